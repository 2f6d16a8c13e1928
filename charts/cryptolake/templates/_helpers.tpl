{{/*
Name of the chart, or nameOverride.
*/}}
{{- define "cryptolake.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Fully qualified name: the release name alone when it already contains the chart name.
*/}}
{{- define "cryptolake.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "cryptolake.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Labels of every resource. part-of is what the redpanda and minio NetworkPolicies admit.
*/}}
{{- define "cryptolake.labels" -}}
helm.sh/chart: {{ include "cryptolake.chart" . }}
{{ include "cryptolake.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: cryptolake
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "cryptolake.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cryptolake.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/*
Labels of one component's resources and pods, so that `kubectl logs -l app.kubernetes.io/component=<c>` follows it.
Call with (list $ "<component>").
*/}}
{{- define "cryptolake.componentLabels" -}}
{{ include "cryptolake.labels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "cryptolake.componentSelectorLabels" -}}
{{ include "cryptolake.selectorLabels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{/*
Prometheus scrape annotations. Call with (list $ port path).
*/}}
{{- define "cryptolake.scrapeAnnotations" -}}
{{- if (index . 0).Values.prometheus.annotations -}}
prometheus.io/scrape: "true"
prometheus.io/port: {{ index . 1 | quote }}
prometheus.io/path: {{ index . 2 }}
{{- end -}}
{{- end -}}

{{/*
Image reference. Call with (list $ .Values.<x>.image).
*/}}
{{- define "cryptolake.image" -}}
{{- $image := index . 1 -}}
{{- printf "%s:%s" $image.repository ($image.tag | default (index . 0).Chart.AppVersion | toString) -}}
{{- end -}}

{{/*
The settings model, generated from core/settings.py: a list of {name, env, default, secret, help}.
*/}}
{{- define "cryptolake.settingsSpec" -}}
{{- .Files.Get "files/settings.yaml" -}}
{{- end -}}

{{/*
Fail on a key of .Values.settings that is no setting of the workloads, or that is secret (those go in credentials).
*/}}
{{- define "cryptolake.validateSettings" -}}
{{- $spec := (include "cryptolake.settingsSpec" . | fromYaml).settings -}}
{{- range $key, $_ := .Values.settings -}}
{{- $known := false -}}
{{- range $spec -}}
{{- if eq .name $key -}}
{{- if .secret -}}
{{- fail (printf "settings.%s is secret: set it through credentials (existingSecret or values)" $key) -}}
{{- end -}}
{{- $known = true -}}
{{- end -}}
{{- end -}}
{{- if not $known -}}
{{- fail (printf "settings.%s is not a setting of cryptolake (see files/settings.yaml)" $key) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
Effective value of one non-secret setting as env text: .Values.settings.<name>, else the code's default.
Lists are joined with commas and whole numbers keep their digits. Call with (list $ "<name>").
*/}}
{{- define "cryptolake.setting" -}}
{{- $root := index . 0 -}}
{{- $name := index . 1 -}}
{{- $value := "" -}}
{{- $found := false -}}
{{- range (include "cryptolake.settingsSpec" $root | fromYaml).settings -}}
{{- if eq .name $name -}}
{{- $value = .default -}}
{{- $found = true -}}
{{- end -}}
{{- end -}}
{{- if not $found -}}
{{- fail (printf "no setting named %s" $name) -}}
{{- end -}}
{{- if hasKey $root.Values.settings $name -}}
{{- $value = index $root.Values.settings $name -}}
{{- end -}}
{{- if kindIs "slice" $value -}}
{{- join "," $value -}}
{{- else if kindIs "float64" $value -}}
{{- if eq $value (floor $value) -}}{{- int64 $value -}}{{- else -}}{{- $value -}}{{- end -}}
{{- else -}}
{{- $value -}}
{{- end -}}
{{- end -}}

{{/*
Name of the Secret holding the secret settings.
*/}}
{{- define "cryptolake.credentialsSecretName" -}}
{{- .Values.credentials.existingSecret | default (printf "%s-credentials" (include "cryptolake.fullname" .)) -}}
{{- end -}}

{{/*
env of every container that runs cryptolake code: one entry per setting, secrets by reference to the Secret.
*/}}
{{- define "cryptolake.env" -}}
{{- include "cryptolake.validateSettings" . -}}
{{- range (include "cryptolake.settingsSpec" . | fromYaml).settings }}
- name: {{ .env }}
{{- if .secret }}
  valueFrom:
    secretKeyRef:
      name: {{ include "cryptolake.credentialsSecretName" $ }}
      key: {{ .name }}
      {{- if .optional }}
      optional: true
      {{- end }}
{{- else }}
  value: {{ include "cryptolake.setting" (list $ .name) | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{/*
Ingestor component.
*/}}
{{- define "cryptolake.ingestor.name" -}}
{{- printf "%s-ingestor" (include "cryptolake.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "cryptolake.ingestor.port" -}}
{{- include "cryptolake.setting" (list . "ingestor_http_port") -}}
{{- end -}}

{{/*
Spark component: the SparkApplication of one layer. Call with (list $ "<layer>").
*/}}
{{- define "cryptolake.spark.appName" -}}
{{- printf "%s-%s" (include "cryptolake.fullname" (index . 0)) (index . 1) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Driver or executor of one layer: the shared shape, the layer's overrides, and what every Spark pod carries.
Call with (list $ "<layer>" "driver"|"executor").
*/}}
{{- define "cryptolake.spark.pod" -}}
{{- $root := index . 0 -}}
{{- $layer := index . 1 -}}
{{- $role := index . 2 -}}
{{- $overrides := index (index $root.Values.spark.layers $layer) $role | default dict -}}
{{- $shape := mergeOverwrite (deepCopy (index $root.Values.spark $role)) (deepCopy $overrides) -}}
{{ toYaml $shape }}
labels:
  {{- include "cryptolake.componentLabels" (list $root $layer) | nindent 2 }}
{{- if eq $role "driver" }}
serviceAccount: {{ $root.Values.spark.serviceAccount }}
{{- /* The UI answers the sink's /metrics/prometheus with a redirect to the path with a slash: scrape that. */}}
{{- with include "cryptolake.scrapeAnnotations" (list $root 4040 "/metrics/prometheus/") }}
annotations:
  {{- . | nindent 2 }}
{{- end }}
{{- end }}
{{- /* The JVM is up before the job's own conf is read: Spark's logging config must reach it as a JVM option. */}}
javaOptions: {{ printf "-Dlog4j2.configurationFile=%s/jobs/spark-log4j2.properties" $root.Values.spark.projectDir | quote }}
env:
  {{- include "cryptolake.env" $root | trim | nindent 2 }}
podSecurityContext:
  {{- toYaml $root.Values.spark.podSecurityContext | nindent 2 }}
securityContext:
  {{- toYaml $root.Values.spark.securityContext | nindent 2 }}
volumeMounts:
  - name: tmp
    mountPath: /tmp
  - name: work-dir
    mountPath: {{ $root.Values.spark.workDir }}
{{- end -}}
