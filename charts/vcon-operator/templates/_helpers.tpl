{{/* Names, labels and the shared pieces of the pod specs. */}}

{{- define "vcon-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* release-chart, or the release name alone when it already holds the chart name. */}}
{{- define "vcon-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "vcon-operator.apiName" -}}
{{- printf "%s-api" (include "vcon-operator.fullname" .) }}
{{- end }}

{{- define "vcon-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object, besides name/instance/component. */}}
{{- define "vcon-operator.baseLabels" -}}
helm.sh/chart: {{ include "vcon-operator.chart" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: vcon-operator
{{- end }}

{{/* Labels of objects that are not selected by a selector (add a component). */}}
{{- define "vcon-operator.labels" -}}
{{ include "vcon-operator.baseLabels" . }}
app.kubernetes.io/name: {{ include "vcon-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Selector of the operator pods (immutable: never add to it). */}}
{{- define "vcon-operator.operatorSelector" -}}
app.kubernetes.io/name: {{ include "vcon-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{/* Selector of the API pods (immutable: never add to it). */}}
{{- define "vcon-operator.apiSelector" -}}
app.kubernetes.io/name: {{ include "vcon-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: api
{{- end }}

{{- define "vcon-operator.monitoringLabels" -}}
{{ include "vcon-operator.labels" . }}
{{- with .Values.monitoring.additionalLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "vcon-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "vcon-operator.serviceAccountName" -}}
{{- if .Values.operator.serviceAccount.create }}
{{- default (include "vcon-operator.fullname" .) .Values.operator.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.operator.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "vcon-operator.apiTokenSecretName" -}}
{{- default (printf "%s-token" (include "vcon-operator.apiName" .)) .Values.api.token.existingSecret }}
{{- end }}

{{/* REDIS_URL from the Secret, when one is named. */}}
{{- define "vcon-operator.redisEnv" -}}
{{- if .Values.redis.existingSecret.name }}
- name: REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.redis.existingSecret.name }}
      key: {{ .Values.redis.existingSecret.key }}
{{- else }}
- name: REDIS_URL
  value: {{ required "set redis.url or redis.existingSecret.name: the operator and the API need a Redis (the chart does not install one)" .Values.redis.url | quote }}
{{- end }}
{{- end }}

{{/* Hardened container: nothing runs as root, nothing writes the image. */}}
{{- define "vcon-operator.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "vcon-operator.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Scheduling fields shared by both Deployments; pass the component's values. */}}
{{- define "vcon-operator.scheduling" -}}
{{- with .nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- end }}
