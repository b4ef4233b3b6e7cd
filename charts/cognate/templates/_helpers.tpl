{{- define "cognate.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "cognate.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "cognate.daemonSelector" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: daemon
{{- end -}}

{{- define "cognate.operatorSelector" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "cognate.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "cognate.adminSecret" -}}
{{- .Values.adminCredentials.existingSecret | default (printf "%s-admin" (include "cognate.fullname" .)) -}}
{{- end -}}

{{- define "cognate.masterKeySecret" -}}
{{- .Values.masterKey.existingSecret | default (printf "%s-master-key" (include "cognate.fullname" .)) -}}
{{- end -}}

{{- /* http, or https when the daemon terminates TLS itself (daemon.tls). */ -}}
{{- define "cognate.scheme" -}}
{{- if .Values.daemon.tls.secretName }}https{{ else }}http{{ end }}
{{- end -}}

{{- define "cognate.endpoint" -}}
{{ include "cognate.scheme" . }}://{{ include "cognate.fullname" . }}.{{ .Release.Namespace }}.svc:{{ .Values.daemon.port }}
{{- end -}}

{{- define "cognate.securityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}
