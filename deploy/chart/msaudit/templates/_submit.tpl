{{/* The pod template of the submit Job and CronJob: enqueue submit, signing
in as submit.auth says, as deploy/examples. Call with (list $ "job") or
(list $ "cronJob"). */}}
{{- define "msaudit.submitPod" -}}
{{- $kind := index . 1 -}}
{{- with index . 0 -}}
{{- $s := .Values.submit -}}
{{- if not (has $s.auth (list "workload-identity" "certificate" "client-secret")) }}
{{- fail "submit.auth must be workload-identity, certificate or client-secret" }}
{{- end }}
metadata:
  labels:
    {{- include "msaudit.labels" . | nindent 4 }}
    app.kubernetes.io/component: enqueue
    {{- if eq $s.auth "workload-identity" }}
    # Asks the AKS webhook to inject AZURE_FEDERATED_TOKEN_FILE and the token.
    azure.workload.identity/use: "true"
    {{- end }}
spec:
  {{- if eq $s.auth "workload-identity" }}
  serviceAccountName: {{ include "msaudit.fullname" . }}-enqueue
  {{- else }}
  # Needs no Kubernetes API access and no workload identity.
  serviceAccountName: default
  {{- end }}
  # A restarted submit would start a second run.
  restartPolicy: Never
  automountServiceAccountToken: false
  enableServiceLinks: false
  securityContext:
    {{- include "msaudit.podSecurityContext" . | nindent 4 }}
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  containers:
    - name: enqueue
      image: {{ include "msaudit.image" (list . $s.image) }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args:
        - submit
        - --tenant-id=$(AZURE_TENANT_ID)
        - --client-id=$(AZURE_CLIENT_ID)
        - --auth={{ $s.auth }}
        {{- if eq $s.auth "certificate" }}
        - --certificate-file=/etc/msaudit/cert/tls.pem
        {{- else if eq $s.auth "client-secret" }}
        # A file: a secret given as an argument shows in the process list.
        - --client-secret-file=/etc/msaudit/secret/client-secret
        {{- end }}
        {{- if eq $kind "cronJob" }}
        # A re-audit: reuse the "no consumer account" answers of the tenant's
        # newest completed audit still kept (the first time: none).
        - --since=latest
        # Kept until the next tick's run has read it (a month, plus the
        # run's own days).
        - --retention=1080h
        {{- end }}
        - --output=json
      env:
        - name: AZURE_TENANT_ID
          value: {{ required "submit.tenantId: the tenant to audit" $s.tenantId | quote }}
        - name: AZURE_CLIENT_ID
          value: {{ required "submit.clientId: the app registration's client ID" $s.clientId | quote }}
        - name: REDIS_URL
          value: {{ include "msaudit.redisURL" . | quote }}
        {{- if include "msaudit.redisPassword" . }}
        - name: REDIS_PASSWORD_FILE
          value: {{ include "msaudit.redisPasswordDir" . }}/password
        {{- end }}
        - name: MSAUDIT_LOG_FORMAT
          value: json
      {{- $mounts := or (include "msaudit.redisPassword" .) (ne $s.auth "workload-identity") }}
      {{- if $mounts }}
      volumeMounts:
        {{- if include "msaudit.redisPassword" . }}
        - name: redis-password
          mountPath: {{ include "msaudit.redisPasswordDir" . }}
          readOnly: true
        {{- end }}
        {{- if eq $s.auth "certificate" }}
        - name: certificate
          mountPath: /etc/msaudit/cert
          readOnly: true
        {{- else if eq $s.auth "client-secret" }}
        - name: client-secret
          mountPath: /etc/msaudit/secret
          readOnly: true
        {{- end }}
      {{- end }}
      resources:
        {{- toYaml $s.resources | nindent 8 }}
      securityContext:
        {{- include "msaudit.containerSecurityContext" . | nindent 8 }}
  {{- if $mounts }}
  volumes:
    {{- if include "msaudit.redisPassword" . }}
    {{- include "msaudit.redisPasswordVolume" . | nindent 4 }}
    {{- end }}
    {{- if eq $s.auth "certificate" }}
    - name: certificate
      secret:
        secretName: {{ $s.certificateSecret }}
        defaultMode: 0440
        items:
          - key: tls.pem
            path: tls.pem
    {{- else if eq $s.auth "client-secret" }}
    - name: client-secret
      secret:
        secretName: {{ $s.clientSecretSecret }}
        defaultMode: 0440
        items:
          - key: client-secret
            path: client-secret
    {{- end }}
  {{- end }}
{{- end -}}
{{- end -}}
