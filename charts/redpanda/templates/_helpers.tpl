{{/*
Name of the chart, or nameOverride.
*/}}
{{- define "redpanda.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Fully qualified name: the release name alone when it already contains the chart name. Also the Service name
that Kafka clients bootstrap from.
*/}}
{{- define "redpanda.fullname" -}}
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

{{- define "redpanda.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "redpanda.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "redpanda.selectorLabels" -}}
app.kubernetes.io/name: {{ include "redpanda.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/*
Labels of one component (broker, topics, console). Call with (list $ "<component>").
*/}}
{{- define "redpanda.componentLabels" -}}
{{ include "redpanda.labels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "redpanda.componentSelectorLabels" -}}
{{ include "redpanda.selectorLabels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "redpanda.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion | toString) -}}
{{- end -}}

{{/*
Kafka address inside the cluster, as the broker advertises it: the Service's name qualified by namespace, which
resolves from every namespace whatever the cluster domain.
*/}}
{{- define "redpanda.kafkaAddress" -}}
{{- printf "%s.%s.svc:%d" (include "redpanda.fullname" .) .Release.Namespace (.Values.kafkaPort | int) -}}
{{- end -}}

{{- define "redpanda.adminAddress" -}}
{{- printf "%s.%s.svc:%d" (include "redpanda.fullname" .) .Release.Namespace (.Values.adminPort | int) -}}
{{- end -}}

{{/*
Broker component.
*/}}
{{- define "redpanda.broker.headlessName" -}}
{{- printf "%s-headless" (include "redpanda.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Topics component: the Job's name changes with what it sets and its image, so an upgrade that changes them runs it
again.
*/}}
{{- define "redpanda.topics.jobName" -}}
{{- $digest := list .Values.topics .Values.autoCreateTopics (include "redpanda.image" .) | toJson | sha256sum | trunc 8 -}}
{{- printf "%s-topics-%s" (include "redpanda.fullname" .) $digest | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Console component.
*/}}
{{- define "redpanda.console.name" -}}
{{- printf "%s-console" (include "redpanda.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
