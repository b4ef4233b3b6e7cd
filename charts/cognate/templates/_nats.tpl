{{- /* NATS credentials and TLS for the daemon (docs/nats-security.md): secrets are
read from existing Secrets, as environment (password, token) or mounted files (.creds,
NKey seed, CA and client certificate). */ -}}

{{- define "cognate.natsEnv" -}}
{{- $auth := .Values.nats.auth -}}
{{- $tls := .Values.nats.tls -}}
- {name: COGNATE_NATS_INBOX_PREFIX, value: {{ .Values.nats.inboxPrefix | quote }}}
{{- if and (ne $auth.type "none") (not $auth.existingSecret) }}
{{- fail (printf "nats.auth.type %s needs nats.auth.existingSecret" $auth.type) }}
{{- end }}
{{- if eq $auth.type "creds" }}
- {name: COGNATE_NATS_CREDS, value: /etc/cognate/nats-auth/nats.creds}
{{- else if eq $auth.type "nkey" }}
- {name: COGNATE_NATS_NKEY_SEED_FILE, value: /etc/cognate/nats-auth/seed}
{{- else if eq $auth.type "password" }}
{{- if not $auth.user }}
{{- fail "nats.auth.type password needs nats.auth.user" }}
{{- end }}
- {name: COGNATE_NATS_USER, value: {{ $auth.user | quote }}}
- name: COGNATE_NATS_PASSWORD
  valueFrom: {secretKeyRef: {name: {{ $auth.existingSecret | quote }}, key: {{ $auth.passwordKey | quote }}}}
{{- else if eq $auth.type "token" }}
- name: COGNATE_NATS_TOKEN
  valueFrom: {secretKeyRef: {name: {{ $auth.existingSecret | quote }}, key: {{ $auth.tokenKey | quote }}}}
{{- end }}
{{- if and $tls.clientCertificate (not $tls.existingSecret) }}
{{- fail "nats.tls.clientCertificate needs nats.tls.existingSecret" }}
{{- end }}
{{- if $tls.existingSecret }}
- {name: COGNATE_NATS_TLS_CA, value: /etc/cognate/nats-tls/ca.crt}
{{- if $tls.clientCertificate }}
- {name: COGNATE_NATS_TLS_CERT, value: /etc/cognate/nats-tls/tls.crt}
- {name: COGNATE_NATS_TLS_KEY, value: /etc/cognate/nats-tls/tls.key}
{{- end }}
{{- end }}
{{- if $tls.required }}
- {name: COGNATE_NATS_TLS_REQUIRED, value: "true"}
{{- end }}
{{- end -}}

{{- define "cognate.natsVolumeMounts" -}}
{{- if has .Values.nats.auth.type (list "creds" "nkey") }}
- {name: nats-auth, mountPath: /etc/cognate/nats-auth, readOnly: true}
{{- end }}
{{- if .Values.nats.tls.existingSecret }}
- {name: nats-tls, mountPath: /etc/cognate/nats-tls, readOnly: true}
{{- end }}
{{- end -}}

{{- define "cognate.natsVolumes" -}}
{{- $auth := .Values.nats.auth -}}
{{- $tls := .Values.nats.tls -}}
{{- if has $auth.type (list "creds" "nkey") }}
- name: nats-auth
  secret:
    secretName: {{ $auth.existingSecret | quote }}
    defaultMode: 0440
    items:
      {{- if eq $auth.type "creds" }}
      - {key: {{ $auth.credsKey | quote }}, path: nats.creds}
      {{- else }}
      - {key: {{ $auth.nkeySeedKey | quote }}, path: seed}
      {{- end }}
{{- end }}
{{- if $tls.existingSecret }}
- name: nats-tls
  secret:
    secretName: {{ $tls.existingSecret | quote }}
    defaultMode: 0440
    items:
      - {key: {{ $tls.caKey | quote }}, path: ca.crt}
      {{- if $tls.clientCertificate }}
      - {key: {{ $tls.certKey | quote }}, path: tls.crt}
      - {key: {{ $tls.keyKey | quote }}, path: tls.key}
      {{- end }}
{{- end }}
{{- end -}}
