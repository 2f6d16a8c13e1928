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
The lake user's policy: list the bucket, and read, write and delete its objects (S3A renames are copy + delete). One
source with local mode's lake user (cryptolake/local/minio.py): files/lake-policy.json, BUCKET standing for the bucket.
*/}}
{{- define "minio.lakePolicy" -}}
{{- .Files.Get "files/lake-policy.json" | replace "BUCKET" .Values.bucket | fromJson | toPrettyJson -}}
{{- end -}}

{{/*
Setup component: the Job's name changes with what it sets up, so an upgrade that changes it runs it again.
*/}}
{{- define "minio.setup.jobName" -}}
{{- $digest := list .Values.bucket .Values.lakeUser.accessKey (include "minio.lakePolicy" .) .Values.mcImage | toJson | sha256sum | trunc 8 -}}
{{- printf "%s-setup-%s" (include "minio.fullname" .) $digest | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Bytes the data volume must hold: a day of the lake, `sizing.tradesPerSecond` x `sizing.bytesPerTrade` x 86,400 plus
`sizing.bytesPerDay`, for `sizing.lakeDays` plus `sizing.replacedDays` (files a compaction replaced wait that long
for vacuum), x `sizing.headroom`.
*/}}
{{- define "minio.neededBytes" -}}
{{- $s := .Values.sizing -}}
{{- $day := addf (mulf $s.tradesPerSecond $s.bytesPerTrade 86400) $s.bytesPerDay -}}
{{- mulf $day (addf $s.lakeDays $s.replacedDays) $s.headroom | ceil | int64 -}}
{{- end -}}

{{/*
Size of the data volume in GiB: `storage.size`, or what the sizing needs rounded up. Fails when a given size cannot
hold the stated days at the stated rate.
*/}}
{{- define "minio.storageGi" -}}
{{- $neededGi := div (add (include "minio.neededBytes" . | int64) 1073741823) 1073741824 -}}
{{- if not .Values.storage.size -}}
{{- $neededGi -}}
{{- else -}}
{{- $given := trimSuffix "Gi" .Values.storage.size | int64 -}}
{{- if lt $given $neededGi -}}
{{- $s := .Values.sizing -}}
{{- fail (printf "storage.size %s cannot hold the lake: (%g trades/s x %g B/trade x 86400 s + %.0f B) a day x (%g + %g) days x %g headroom needs %dGi; raise storage.size (or leave it empty to size it), or lower sizing.tradesPerSecond or sizing.lakeDays" .Values.storage.size (float64 $s.tradesPerSecond) (float64 $s.bytesPerTrade) (float64 $s.bytesPerDay) (float64 $s.lakeDays) (float64 $s.replacedDays) (float64 $s.headroom) $neededGi) -}}
{{- end -}}
{{- $given -}}
{{- end -}}
{{- end -}}
