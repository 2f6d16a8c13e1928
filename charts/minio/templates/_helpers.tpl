{{/*
Name of the chart, or nameOverride.
*/}}
{{- define "minio.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Fully qualified name: the release name alone when it already contains the chart name. Also the S3 API Service.
*/}}
{{- define "minio.fullname" -}}
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

{{- define "minio.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "minio.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "minio.selectorLabels" -}}
app.kubernetes.io/name: {{ include "minio.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/*
Labels of one component (server, setup). Call with (list $ "<component>").
*/}}
{{- define "minio.componentLabels" -}}
{{ include "minio.labels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "minio.componentSelectorLabels" -}}
{{ include "minio.selectorLabels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{/*
Image reference: repository:tag, and @digest when one is pinned. Call with (list .Values.<x>Image "<default tag>").
*/}}
{{- define "minio.image" -}}
{{- $image := index . 0 -}}
{{- printf "%s:%s" $image.repository ($image.tag | default (index . 1) | toString) -}}
{{- with $image.digest }}@{{ . }}{{ end -}}
{{- end -}}

{{/*
S3 API endpoint inside the cluster.
*/}}
{{- define "minio.endpoint" -}}
{{- printf "http://%s.%s.svc:%d" (include "minio.fullname" .) .Release.Namespace (.Values.apiPort | int) -}}
{{- end -}}

{{- define "minio.rootSecretName" -}}
{{- printf "%s-root" (include "minio.fullname" .) -}}
{{- end -}}

{{- define "minio.lakeUserSecretName" -}}
{{- printf "%s-lake-user" (include "minio.fullname" .) -}}
{{- end -}}

{{- define "minio.policyName" -}}
{{- printf "%s-lake-rw" .Values.bucket -}}
{{- end -}}

{{/*
A credential as base64 Secret data: the value given, else the one already in the cluster's Secret, else a new
random one. Keeping the existing value makes upgrades (every `skaffold dev` redeploy) leave credentials alone.
Call with (list $ "<secret name>" "<key>" "<given value>").
*/}}
{{- define "minio.credential" -}}
{{- $root := index . 0 -}}
{{- $given := index . 3 -}}
{{- $existing := lookup "v1" "Secret" $root.Release.Namespace (index . 1) -}}
{{- if $given -}}
{{- $given | b64enc -}}
{{- else if and $existing (hasKey $existing.data (index . 2)) -}}
{{- index $existing.data (index . 2) -}}
{{- else -}}
{{- randAlphaNum 32 | b64enc -}}
{{- end -}}
{{- end -}}

{{/*
The lake user's policy: list the bucket, and read, write and delete its objects (S3A renames are copy + delete).
*/}}
{{- define "minio.lakePolicy" -}}
{{- $bucket := printf "arn:aws:s3:::%s" .Values.bucket -}}
{{- $statements := list
  (dict "Effect" "Allow" "Action" (list "s3:GetBucketLocation" "s3:ListBucket" "s3:ListBucketMultipartUploads") "Resource" (list $bucket))
  (dict "Effect" "Allow" "Action" (list "s3:GetObject" "s3:PutObject" "s3:DeleteObject" "s3:AbortMultipartUpload" "s3:ListMultipartUploadParts") "Resource" (list (printf "%s/*" $bucket)))
-}}
{{- dict "Version" "2012-10-17" "Statement" $statements | toPrettyJson -}}
{{- end -}}

{{/*
Setup component: the Job's name changes with what it sets up, so an upgrade that changes it runs it again.
*/}}
{{- define "minio.setup.jobName" -}}
{{- $digest := list .Values.bucket .Values.lakeUser.accessKey (include "minio.lakePolicy" .) .Values.mcImage | toJson | sha256sum | trunc 8 -}}
{{- printf "%s-setup-%s" (include "minio.fullname" .) $digest | trunc 63 | trimSuffix "-" -}}
{{- end -}}
