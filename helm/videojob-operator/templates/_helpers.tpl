{{/* Chart name, overridable. */}}
{{- define "videojob.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: the release name, plus the chart name unless the release name contains it. */}}
{{- define "videojob.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "videojob.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "videojob.labels" -}}
helm.sh/chart: {{ include "videojob.chart" . }}
{{ include "videojob.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: videojob
{{- end }}

{{/* The operator pod's selector (also the Prometheus job name via jobLabel). */}}
{{- define "videojob.selectorLabels" -}}
app.kubernetes.io/name: {{ include "videojob.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "videojob.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "videojob.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "videojob.configMapName" -}}
{{- printf "%s-config" (include "videojob.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "videojob.redisName" -}}
{{- printf "%s-redis" (include "videojob.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "videojob.operatorImage" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "videojob.workerImage" -}}
{{- printf "%s:%s" .Values.worker.image.repository (default .Chart.AppVersion .Values.worker.image.tag) }}
{{- end }}

{{/* Namespaces the stage pods' ServiceAccount is created in. */}}
{{- define "videojob.workerNamespaces" -}}
{{- $ns := .Values.worker.serviceAccount.namespaces | default .Values.watch.namespaces | default (list .Release.Namespace) }}
{{- toJson (uniq $ns) }}
{{- end }}

{{/* The Redis URL the operator passes on in plain form ("" when it comes from a Secret). */}}
{{- define "videojob.redisURL" -}}
{{- if not (include "videojob.redisSecret" .) }}
{{- .Values.redis.url }}
{{- end }}
{{- end }}

{{/* The Secret with the master key of progress tokens (key `key`). */}}
{{- define "videojob.progressKeyName" -}}
{{- .Values.operator.progressKey.existingSecret | default (printf "%s-progress-key" (include "videojob.fullname" .) | trunc 63 | trimSuffix "-") }}
{{- end }}

{{- /* The MutatingAdmissionPolicy (and its binding) that adds the operator's finalizer at
creation; rendered where the API server offers the API (finalizer-policy.yaml). */ -}}
{{- define "videojob.finalizerPolicy" -}}
{{- printf "%s-finalizer" (include "videojob.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "videojob.finalizerPolicyRendered" -}}
{{- if and .Values.admissionPolicy.finalizer (.Capabilities.APIVersions.Has "admissionregistration.k8s.io/v1/MutatingAdmissionPolicy") }}true{{ end }}
{{- end }}

{{/* The bundled Redis's Secret: its password, and the URL with it (redis/auth.yaml). */}}
{{- define "videojob.redisAuthName" -}}
{{- printf "%s-auth" (include "videojob.redisName" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The Secret the Redis URL (with its password) comes from, in the release namespace for the
operator and in each VideoJob namespace for stage pods; "" when the URL is plain. */}}
{{- define "videojob.redisSecret" -}}
{{- if .Values.redis.existingSecret }}
{{- .Values.redis.existingSecret }}
{{- else if .Values.redis.bundled.enabled }}
{{- include "videojob.redisAuthName" . }}
{{- end }}
{{- end }}

{{- define "videojob.redisSecretKey" -}}
{{- if .Values.redis.existingSecret }}{{ .Values.redis.existingSecretKey }}{{ else }}redis-url{{ end }}
{{- end }}

{{- define "videojob.workerServiceAccountAnnotations" -}}
{{- $a := deepCopy (.Values.worker.serviceAccount.annotations | default dict) }}
{{- with .Values.gcs.workloadIdentity.serviceAccount }}
{{- $_ := set $a "iam.gke.io/gcp-service-account" . }}
{{- end }}
{{- toYaml $a }}
{{- end }}

{{/* The path of a file:// storage root. */}}
{{/* "true" when the chart creates the artifacts claim: a file:// root, no storage.volume. */}}
{{- define "videojob.storageClaim" -}}
{{- if and (hasPrefix "file://" .Values.storage.root) (not .Values.storage.volume) .Values.storage.persistence.enabled }}true{{- end }}
{{- end }}

{{- define "videojob.storagePath" -}}
{{- trimPrefix "file://" .Values.storage.root }}
{{- end }}

{{/* The gateway (docs/http-api.md): its own name label, so no selector of the operator's
matches its pods. */}}
{{- define "videojob.gatewayName" -}}
{{- printf "%s-gateway" (include "videojob.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "videojob.gatewaySelectorLabels" -}}
app.kubernetes.io/name: {{ printf "%s-gateway" (include "videojob.name" .) | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "videojob.gatewayImage" -}}
{{- printf "%s:%s" .Values.gateway.image.repository (default .Chart.AppVersion .Values.gateway.image.tag) }}
{{- end }}

{{- define "videojob.gatewayKeyNamespace" -}}
{{- default .Release.Namespace .Values.gateway.apiKeys.namespace }}
{{- end }}

{{/* The archive (docs/history.md): the bundled PostgreSQL's name, and the Secret the DSN comes
from (the administrator's, or the bundled one's). Checked here, so that both Deployments fail the
same way on a half-set archive. */}}
{{- define "videojob.postgresName" -}}
{{- printf "%s-postgres" (include "videojob.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "videojob.archiveAuthName" -}}
{{- printf "%s-archive" (include "videojob.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "videojob.archiveSecret" -}}
{{- $a := .Values.archive }}
{{- if $a.enabled }}
{{- if and $a.existingSecret.name $a.postgres.bundled }}
{{- fail "archive: set archive.existingSecret.name (your PostgreSQL) or archive.postgres.bundled (the chart's), not both" }}
{{- else if $a.existingSecret.name }}
{{- $a.existingSecret.name }}
{{- else if $a.postgres.bundled }}
{{- include "videojob.archiveAuthName" . }}
{{- else }}
{{- fail "archive.enabled needs a PostgreSQL: archive.existingSecret.name (a Secret holding its DSN) or archive.postgres.bundled=true" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "videojob.archiveSecretKey" -}}
{{- if .Values.archive.existingSecret.name }}{{ .Values.archive.existingSecret.key }}{{ else }}dsn{{ end }}
{{- end }}

{{/* VIDEOJOB_ARCHIVE_DSN for the operator and the gateway: from the Secret, never in plain. */}}
{{- define "videojob.archiveEnv" -}}
{{- with include "videojob.archiveSecret" . }}
- name: VIDEOJOB_ARCHIVE_DSN
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ include "videojob.archiveSecretKey" $ }}
{{- end }}
{{- end }}
