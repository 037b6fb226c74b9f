{{/* The prefix of every object's name. */}}
{{- define "msaudit.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 48 | trimSuffix "-" -}}
{{- else if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 48 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 48 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "msaudit.workerName" -}}
{{- include "msaudit.fullname" . }}-worker
{{- end -}}

{{/* Labels on every object; selectors use msaudit.selector only. */}}
{{- define "msaudit.labels" -}}
app.kubernetes.io/name: msaudit
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: msaudit
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* Selects one component of this release: call with (list $ "worker"). */}}
{{- define "msaudit.selector" -}}
app.kubernetes.io/name: msaudit
app.kubernetes.io/instance: {{ (index . 0).Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{/* An image reference: call with (list $ .Values.image). Never untagged. */}}
{{- define "msaudit.image" -}}
{{- $root := index . 0 -}}
{{- $img := index . 1 -}}
{{- $tag := $img.tag | default $root.Chart.AppVersion -}}
{{- if $img.digest -}}
{{- printf "%s:%s@%s" $img.repository $tag $img.digest -}}
{{- else -}}
{{- printf "%s:%s" $img.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* The Redis URL the workers, KEDA and the submit Jobs use. */}}
{{- define "msaudit.redisURL" -}}
{{- if .Values.devRedis.enabled -}}
{{- printf "redis://%s-redis:6379/0" (include "msaudit.fullname" .) -}}
{{- else -}}
{{- .Values.redis.url -}}
{{- end -}}
{{- end -}}

{{/* "true" when Redis needs the password file. */}}
{{- define "msaudit.redisPassword" -}}
{{- if and (not .Values.devRedis.enabled) .Values.redis.passwordSecret.name -}}true{{- end -}}
{{- end -}}

{{/* Where the password file is mounted (REDIS_PASSWORD_FILE's directory). */}}
{{- define "msaudit.redisPasswordDir" -}}/etc/msaudit/redis{{- end -}}

{{/* The pod securityContext of msaudit's own images (distroless nonroot). */}}
{{- define "msaudit.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
# Secret files mounted here are readable by this group.
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "msaudit.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* The Redis password volume, for the workers and the submit Jobs. */}}
{{- define "msaudit.redisPasswordVolume" -}}
# A file, not an environment variable: it does not show in `kubectl
# describe`, /proc/*/environ or crash dumps of the env.
- name: redis-password
  secret:
    secretName: {{ .Values.redis.passwordSecret.name }}
    defaultMode: 0440
    items:
      - key: {{ .Values.redis.passwordSecret.key }}
        path: password
{{- end -}}
