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
{{- $digest := list .Values.topics .Values.sizing .Values.storage .Values.mode .Values.autoCreateTopics (include "redpanda.image" .) | toJson | sha256sum | trunc 8 -}}
{{- printf "%s-topics-%s" (include "redpanda.fullname" .) $digest | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Console component.
*/}}
{{- define "redpanda.console.name" -}}
{{- printf "%s-console" (include "redpanda.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Retention of a topic, in ms: its own `retentionMs`, or `sizing.outageDays`. Call with (list $ <topic>).
*/}}
{{- define "redpanda.retentionMs" -}}
{{- $root := index . 0 -}}
{{- $topic := index . 1 -}}
{{- if hasKey $topic "retentionMs" -}}
{{- $topic.retentionMs | int64 -}}
{{- else -}}
{{- mulf $root.Values.sizing.outageDays 86400000 | int64 -}}
{{- end -}}
{{- end -}}

{{/*
The longest retention of the topics, in ms. Fails on a topic kept forever (`retentionMs: -1`): no volume holds it.
*/}}
{{- define "redpanda.longestRetentionMs" -}}
{{- $longest := 0 -}}
{{- range .Values.topics -}}
{{- $ms := include "redpanda.retentionMs" (list $ .) | int64 -}}
{{- if lt $ms 0 -}}
{{- fail (printf "topic %s: retentionMs -1 keeps records forever, which no volume holds; give it a retention (see sizing)" .name) -}}
{{- end -}}
{{- $longest = max $longest $ms -}}
{{- end -}}
{{- $longest -}}
{{- end -}}

{{/*
Bytes the data volume must hold: the longest retention at `sizing.tradesPerSecond` x `sizing.bytesPerTrade` x
`sizing.headroom`, plus a segment per partition (retention deletes whole segments: the oldest one waits until its
newest record is past retention), plus `storage.minFreeMiB` (below it the broker refuses writes).
*/}}
{{- define "redpanda.neededBytes" -}}
{{- $partitions := 0 -}}
{{- range .Values.topics -}}
{{- $partitions = add $partitions .partitions -}}
{{- end -}}
{{- $sizing := .Values.sizing -}}
{{- $seconds := divf (include "redpanda.longestRetentionMs" . | int64) 1000 -}}
{{- $retained := mulf $sizing.tradesPerSecond $sizing.bytesPerTrade $sizing.headroom $seconds -}}
{{- $mib := add (mul $partitions .Values.storage.segmentMiB) .Values.storage.minFreeMiB -}}
{{- addf $retained (mul $mib 1048576) | ceil | int64 -}}
{{- end -}}

{{/*
Size of the data volume in GiB: `storage.size`, or what the sizing needs rounded up. Fails when a given size cannot
hold the retention at the stated rate.
*/}}
{{- define "redpanda.storageGi" -}}
{{- $needed := include "redpanda.neededBytes" . | int64 -}}
{{- $neededGi := div (add $needed 1073741823) 1073741824 -}}
{{- if not .Values.storage.size -}}
{{- $neededGi -}}
{{- else -}}
{{- $given := trimSuffix "Gi" .Values.storage.size | int64 -}}
{{- if lt $given $neededGi -}}
{{- $seconds := div (include "redpanda.longestRetentionMs" . | int64) 1000 -}}
{{- fail (printf "storage.size %s cannot hold the retention: %g trades/s x %g B/trade x %g headroom x %d s (the longest topic retention), plus a %d MiB segment per partition and %d MiB kept free, needs %dGi; raise storage.size (or leave it empty to size it), or lower sizing.tradesPerSecond or the retention" .Values.storage.size (float64 .Values.sizing.tradesPerSecond) (float64 .Values.sizing.bytesPerTrade) (float64 .Values.sizing.headroom) $seconds (.Values.storage.segmentMiB | int) (.Values.storage.minFreeMiB | int) $neededGi) -}}
{{- end -}}
{{- $given -}}
{{- end -}}
{{- end -}}

{{/*
Fails in production mode on a `memory` below 1G: Redpanda refuses to start with less outside developer mode.
*/}}
{{- define "redpanda.checkMemory" -}}
{{- $n := regexFind "^[0-9]+" .Values.memory | int -}}
{{- $mib := get (dict "K" (div $n 1024) "M" $n "G" (mul $n 1024)) (trimPrefix (toString $n) .Values.memory) -}}
{{- if and (eq .Values.mode "production") (lt (int $mib) 1024) -}}
{{- fail (printf "memory %s: production mode needs at least 1G (Redpanda refuses less outside developer mode); raise memory and the container limit, or set mode dev-container" .Values.memory) -}}
{{- end -}}
{{- end -}}
