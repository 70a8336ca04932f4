{{/* Chart name, at most 63 characters. */}}
{{- define "ledgerq.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name: the release name, plus the chart's unless it has it. */}}
{{- define "ledgerq.fullname" -}}
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

{{- define "ledgerq.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "ledgerq.labels" -}}
helm.sh/chart: {{ include "ledgerq.chart" . }}
{{ include "ledgerq.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: ledgerq
{{- end }}

{{/* Labels shared by all pods of the release (workers and migration). */}}
{{- define "ledgerq.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ledgerq.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The worker pods. */}}
{{- define "ledgerq.workerSelectorLabels" -}}
{{ include "ledgerq.selectorLabels" . }}
app.kubernetes.io/component: worker
{{- end }}

{{/* The migration Job's pods. */}}
{{- define "ledgerq.migrationSelectorLabels" -}}
{{ include "ledgerq.selectorLabels" . }}
app.kubernetes.io/component: migration
{{- end }}

{{- define "ledgerq.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "ledgerq.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "ledgerq.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
The kubelet's grace period: the worker's own shutdown timeout (rounded up to
whole seconds) plus a margin, so that a drain that uses all of its time still
ends in an exit, not a SIGKILL.
*/}}
{{- define "ledgerq.terminationGracePeriodSeconds" -}}
{{- $ms := int .Values.worker.shutdownTimeoutMs }}
{{- add (div (add $ms 999) 1000) (int .Values.terminationGraceMarginSeconds) }}
{{- end }}

{{/* Where the Secret's keys are mounted, as files. */}}
{{- define "ledgerq.secretDir" -}}
/var/run/secrets/ledgerq
{{- end }}

{{/* The queue-depth metric's selector for the HPA. */}}
{{- define "ledgerq.queueMetricSelector" -}}
{{- if .Values.autoscaling.hpa.metricSelector }}
{{- toYaml .Values.autoscaling.hpa.metricSelector }}
{{- else }}
service: {{ include "ledgerq.fullname" . | quote }}
{{- end }}
{{- end }}

{{/* Pod-level settings shared by the worker and the migration Job. */}}
{{- define "ledgerq.podCommon" -}}
automountServiceAccountToken: false
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* Egress rules of the NetworkPolicies: DNS, plus PostgreSQL, plus AMQP when .amqp. */}}
{{- define "ledgerq.egressRules" -}}
{{- $np := .root.Values.networkPolicy -}}
- ports:
    - port: 53
      protocol: UDP
    - port: 53
      protocol: TCP
  {{- with $np.dns.to }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- if .amqp }}
- ports:
    {{- range $np.amqp.ports }}
    - port: {{ . }}
      protocol: TCP
    {{- end }}
  {{- with $np.amqp.to }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
- ports:
    {{- range $np.postgresql.ports }}
    - port: {{ . }}
      protocol: TCP
    {{- end }}
  {{- with $np.postgresql.to }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- with $np.extraEgress }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Where tls.secretName is mounted. */}}
{{- define "ledgerq.tlsDir" -}}
/var/run/secrets/ledgerq-tls
{{- end }}

{{/* The amqps:// file settings, from tls.*Key. */}}
{{- define "ledgerq.tlsEnv" -}}
{{- $t := .Values.tls }}
{{- if $t.secretName }}
{{- if ne (empty $t.amqpCertKey) (empty $t.amqpKeyKey) }}
{{- fail "tls.amqpCertKey and tls.amqpKeyKey go together" }}
{{- end }}
{{- range $env, $key := dict "LEDGERQ_AMQP_CA_FILE" $t.amqpCaKey "LEDGERQ_AMQP_CERT_FILE" $t.amqpCertKey "LEDGERQ_AMQP_KEY_FILE" $t.amqpKeyKey }}
{{- if $key }}
- name: {{ $env }}
  value: {{ printf "%s/%s" (include "ledgerq.tlsDir" $) $key | quote }}
{{- end }}
{{- end }}
{{- else if or $t.amqpCaKey $t.amqpCertKey $t.amqpKeyKey }}
{{- fail "tls.amqpCaKey, tls.amqpCertKey and tls.amqpKeyKey need tls.secretName" }}
{{- end }}
{{- end }}

{{- define "ledgerq.tlsMount" -}}
{{- if .Values.tls.secretName }}
- name: tls
  mountPath: {{ include "ledgerq.tlsDir" . }}
  readOnly: true
{{- end }}
{{- end }}

{{- define "ledgerq.tlsVolume" -}}
{{- if .Values.tls.secretName }}
- name: tls
  secret:
    secretName: {{ .Values.tls.secretName }}
    defaultMode: 288 # 0440
{{- end }}
{{- end }}
