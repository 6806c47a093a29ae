{{- define "taskflow.fullname" -}}{{ .Release.Name | trunc 40 | trimSuffix "-" }}{{- end -}}
{{- define "taskflow.image" -}}{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}{{- end -}}
{{- define "taskflow.secret" -}}{{ .Values.connection.existingSecret | default (printf "%s-connection" (include "taskflow.fullname" .)) }}{{- end -}}
{{- define "taskflow.labels" -}}
app.kubernetes.io/part-of: taskflow
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}
{{- define "taskflow.connectionEnv" -}}
- name: TASKFLOW_REDIS_URL
  valueFrom: {secretKeyRef: {name: {{ include "taskflow.secret" . }}, key: redisUrl}}
- name: TASKFLOW_DATABASE_URL
  valueFrom: {secretKeyRef: {name: {{ include "taskflow.secret" . }}, key: databaseUrl}}
{{- end -}}
{{- define "taskflow.apiTokenSecret" -}}{{ .Values.api.auth.existingSecret | default (printf "%s-api-token" (include "taskflow.fullname" .)) }}{{- end -}}
{{- define "taskflow.apiTlsSecret" -}}{{ .Values.api.tls.secretName | default (printf "%s-api-tls" (include "taskflow.fullname" .)) }}{{- end -}}
{{- /* An egress rule to port .port of .peers (none: anywhere). */ -}}
{{- define "taskflow.egressTo" -}}
- ports: [{protocol: TCP, port: {{ .port }}}]
  {{- with .peers }}
  to: {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
