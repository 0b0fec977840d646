{{/* Names ---------------------------------------------------------------------------- */}}

{{- define "continuum.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "continuum.fullname" -}}
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

{{- define "continuum.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "continuum.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "continuum.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "continuum.secretName" -}}
{{- default (include "continuum.fullname" .) .Values.secrets.existingSecret }}
{{- end }}

{{/* Labels: include "continuum.labels" (dict "ctx" $ "component" "control-plane") */}}
{{- define "continuum.selectorLabels" -}}
app.kubernetes.io/name: {{ include "continuum.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "continuum.labels" -}}
helm.sh/chart: {{ include "continuum.chart" .ctx }}
{{ include "continuum.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: continuum
{{- end }}

{{- define "continuum.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* Modes: which database and live state the control plane uses ------------------------ */}}

{{/* bundled | external | embedded */}}
{{- define "continuum.databaseMode" -}}
{{- if .Values.postgresql.enabled }}bundled
{{- else if or .Values.database.url .Values.secrets.existingSecret }}external
{{- else }}embedded
{{- end }}
{{- end }}

{{- define "continuum.redisMode" -}}
{{- if .Values.redis.enabled }}bundled
{{- else if or .Values.redis.url .Values.redis.existingSecretKey }}external
{{- else }}embedded
{{- end }}
{{- end }}

{{- define "continuum.controlPlaneUrl" -}}
{{- $scheme := ternary "https" "http" (not (empty .Values.controlPlane.tls.secretName)) }}
{{- printf "%s://%s.%s.svc:%d" $scheme (include "continuum.fullname" .) .Release.Namespace (int .Values.controlPlane.service.port) }}
{{- end }}

{{/* A value kept across upgrades: the one in values, else the live Secret's, else random. */}}
{{/* include "continuum.keptSecret" (dict "ctx" $ "secret" NAME "key" KEY "value" VALUE) */}}
{{- define "continuum.keptSecret" -}}
{{- if .value }}
{{- .value | b64enc }}
{{- else }}
{{- $live := lookup "v1" "Secret" .ctx.Release.Namespace .secret }}
{{- if and $live (hasKey $live.data .key) }}
{{- index $live.data .key }}
{{- else }}
{{- randAlphaNum 40 | b64enc }}
{{- end }}
{{- end }}
{{- end }}

{{/* Security ------------------------------------------------------------------------- */}}

{{- define "continuum.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .runAsUser }}
runAsGroup: {{ .runAsGroup }}
fsGroup: {{ .fsGroup }}
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "continuum.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .runAsUser }}
runAsGroup: {{ .runAsGroup }}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* The database URL for the control plane and the migrations Job, as env entries. */}}
{{/* include "continuum.databaseEnv" (dict "ctx" $ "secret" SECRET_NAME) */}}
{{- define "continuum.databaseEnv" -}}
{{- $ctx := .ctx }}
{{- $mode := include "continuum.databaseMode" $ctx }}
{{- if eq $mode "bundled" }}
- name: CONTINUUM_POSTGRES_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "continuum.fullname" $ctx }}-postgresql
      key: password
- name: CONTINUUM_DATABASE_URL
  value: {{ printf "postgresql+psycopg://%s:$(CONTINUUM_POSTGRES_PASSWORD)@%s-postgresql:5432/%s" $ctx.Values.postgresql.auth.username (include "continuum.fullname" $ctx) $ctx.Values.postgresql.auth.database | quote }}
{{- else if eq $mode "external" }}
- name: CONTINUUM_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ .secret }}
      key: {{ $ctx.Values.secrets.keys.databaseUrl }}
{{- end }}
{{- end }}

{{/* Refuse combinations that would run but be wrong. */}}
{{- define "continuum.validate" -}}
{{- $v := .Values }}
{{- if and $v.postgresql.enabled $v.database.url }}
{{- fail "database.url and postgresql.enabled: choose one (an external PostgreSQL, or the bundled one)" }}
{{- end }}
{{- if and $v.redis.enabled (or $v.redis.url $v.redis.existingSecretKey) }}
{{- fail "redis.url/redis.existingSecretKey and redis.enabled: choose one (an external Redis, or the bundled one)" }}
{{- end }}
{{- if and $v.redis.existingSecretKey (not $v.secrets.existingSecret) }}
{{- fail "redis.existingSecretKey needs secrets.existingSecret (the Secret that holds the key)" }}
{{- end }}
{{- if gt (int $v.controlPlane.replicas) 1 }}
{{- if eq (include "continuum.redisMode" .) "embedded" }}
{{- fail "controlPlane.replicas > 1 needs Redis (redis.url or redis.enabled): the in-process live state is per replica" }}
{{- end }}
{{- if eq (include "continuum.databaseMode" .) "embedded" }}
{{- fail "controlPlane.replicas > 1 needs PostgreSQL (database.url, secrets.existingSecret or postgresql.enabled): the SQLite file is per replica" }}
{{- end }}
{{- $p := $v.controlPlane.persistence }}
{{- if not (or $v.controlPlane.artifactsInDatabase (and $p.enabled (or $p.existingClaim (has "ReadWriteMany" $p.accessModes)))) }}
{{- fail "controlPlane.replicas > 1 needs the artifacts shared: controlPlane.artifactsInDatabase (in PostgreSQL, any storage), or a shared data volume (controlPlane.persistence.enabled with accessModes [ReadWriteMany] or an existingClaim)" }}
{{- end }}
{{- end }}
{{- if $v.agent.enabled }}
{{- if not (or $v.agent.enrollToken $v.agent.existingSecret) }}
{{- fail "agent.enabled needs an enrollment token: agent.enrollToken or agent.existingSecret (create one with POST /v1/enrollment-tokens)" }}
{{- end }}
{{- end }}
{{- end }}
