{{/* Names and labels. */}}
{{- define "scoring-worker.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "scoring-worker.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "scoring-worker.selectorLabels" -}}
app.kubernetes.io/name: {{ include "scoring-worker.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "scoring-worker.labels" -}}
{{ include "scoring-worker.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: consumer
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "scoring-worker.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "scoring-worker.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The worker image: repository@digest when a digest is given, else repository:tag. */}}
{{- define "scoring-worker.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* A setting's value as an environment string: whole numbers without an exponent. */}}
{{- define "scoring-worker.envString" -}}
{{- $v := . -}}
{{- if kindIs "float64" $v -}}
{{- if eq (float64 (int64 $v)) $v -}}{{- int64 $v -}}{{- else -}}{{- $v -}}{{- end -}}
{{- else -}}
{{- $v -}}
{{- end -}}
{{- end -}}

{{/* SCORING_WORKER_SHUTDOWN_TIMEOUT_S (the worker's default: 30 s). */}}
{{- define "scoring-worker.shutdownTimeout" -}}
{{- $s := index .Values.settings "SCORING_WORKER_SHUTDOWN_TIMEOUT_S" -}}
{{- if kindIs "invalid" $s -}}30{{- else -}}{{- $s -}}{{- end -}}
{{- end -}}

{{/* The worker's longest drain after SIGTERM, whole seconds: the batch in hand, the
consumer's close and the producer's close, each bounded by the shutdown timeout
(worker/live/loop.py _shutdown, worker/live/stopping.py close_within). */}}
{{- define "scoring-worker.drainSeconds" -}}
{{- include "scoring-worker.shutdownTimeout" . | float64 | mulf 3 | ceil | int -}}
{{- end -}}

{{- define "scoring-worker.terminationGracePeriodSeconds" -}}
{{- $drain := include "scoring-worker.drainSeconds" . | int -}}
{{- $override := .Values.drain.terminationGracePeriodSeconds -}}
{{- if kindIs "invalid" $override -}}
{{- add $drain (int .Values.drain.marginSeconds) -}}
{{- else if lt (int $override) $drain -}}
{{- fail (printf "drain.terminationGracePeriodSeconds=%d is shorter than the worker's drain (%d s = 3 x SCORING_WORKER_SHUTDOWN_TIMEOUT_S): Kubernetes would SIGKILL a worker still committing; raise it or leave it unset (derived)" (int $override) $drain) -}}
{{- else -}}
{{- int $override -}}
{{- end -}}
{{- end -}}

{{/* Startup probe: failures allowed so that periodSeconds x failureThreshold covers the
bundle's self-check and the first assignment. */}}
{{- define "scoring-worker.startupFailureThreshold" -}}
{{- $p := .Values.probes.startup -}}
{{- $budget := add (int $p.selfCheckSeconds) (int $p.firstAssignmentSeconds) -}}
{{- divf $budget (int $p.periodSeconds) | ceil | int -}}
{{- end -}}

{{/* keda, hpa or none. auto: keda when the cluster serves keda.sh/v1alpha1. */}}
{{- define "scoring-worker.autoscaler" -}}
{{- $a := .Values.autoscaling -}}
{{- if not $a.enabled -}}none
{{- else if eq $a.engine "auto" -}}
{{- if .Capabilities.APIVersions.Has "keda.sh/v1alpha1/ScaledObject" -}}keda{{- else -}}hpa{{- end -}}
{{- else -}}{{- $a.engine -}}
{{- end -}}
{{- end -}}

{{/* The project's rules that a schema cannot express; `helm template` and `helm install`
fail with one line saying what to change. tests/unit/test_helm_chart.py checks the
rendered manifests against the same rules. */}}
{{- define "scoring-worker.validate" -}}
{{- $v := .Values -}}
{{- $partitions := int $v.kafka.inputTopicPartitions -}}
{{- $surge := int $v.strategy.maxSurge -}}
{{- $autoscaler := include "scoring-worker.autoscaler" . -}}
{{- $most := int $v.replicaCount -}}
{{- if ne $autoscaler "none" -}}
{{- $most = int $v.autoscaling.maxReplicas -}}
{{- if gt (int $v.autoscaling.minReplicas) $most -}}
{{- fail (printf "autoscaling.minReplicas=%d is above autoscaling.maxReplicas=%d" (int $v.autoscaling.minReplicas) $most) -}}
{{- end -}}
{{- if gt (int $v.replicaCount) $most -}}
{{- fail (printf "replicaCount=%d is above autoscaling.maxReplicas=%d" (int $v.replicaCount) $most) -}}
{{- end -}}
{{- end -}}
{{- if gt $most $partitions -}}
{{- fail (printf "%d replicas (%s) is above kafka.inputTopicPartitions=%d: a member beyond the partition count owns nothing and never becomes ready; add partitions to the input topic or lower it" $most (ternary "autoscaling.maxReplicas" "replicaCount" (ne $autoscaler "none")) $partitions) -}}
{{- end -}}
{{- if gt (add $most $surge) $partitions -}}
{{- fail (printf "%d replicas + strategy.maxSurge=%d is above kafka.inputTopicPartitions=%d: a surge pod would get no partition, never become ready and stall the rollout; set strategy.maxSurge: 0" $most $surge $partitions) -}}
{{- end -}}
{{- if and (eq (int $v.strategy.maxSurge) 0) (eq (int $v.strategy.maxUnavailable) 0) -}}
{{- fail "strategy.maxSurge and strategy.maxUnavailable are both 0: a rolling update could never start" -}}
{{- end -}}
{{- if and $v.kafka.sasl.enabled (not $v.kafka.sasl.existingSecret) -}}
{{- fail "kafka.sasl.enabled needs kafka.sasl.existingSecret: the name of a Secret holding the SASL username and password" -}}
{{- end -}}
{{- if $v.kafka.sasl.enabled -}}
{{- range $name := list "SASL_MECHANISM" "SASL_MECHANISMS" "SASL_USERNAME" -}}
{{- if hasKey $v.settings (printf "SCORING_WORKER_KAFKA_%s" $name) -}}
{{- fail (printf "settings.SCORING_WORKER_KAFKA_%s is set by kafka.sasl; remove it from settings" $name) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if and $v.kafka.tls.enabled (hasKey $v.settings "SCORING_WORKER_KAFKA_SSL_CA_LOCATION") -}}
{{- fail "settings.SCORING_WORKER_KAFKA_SSL_CA_LOCATION is set by kafka.tls; remove it from settings" -}}
{{- end -}}
{{- if and $v.kafka.tls.enabled (not $v.kafka.tls.caSecret) -}}
{{- fail "kafka.tls.enabled needs kafka.tls.caSecret: the name of a Secret holding the brokers' CA bundle" -}}
{{- end -}}
{{- if and (eq $v.bundle.source "pvc") (not $v.bundle.pvc.claimName) -}}
{{- fail "bundle.source=pvc needs bundle.pvc.claimName" -}}
{{- end -}}
{{- if and (eq $v.bundle.source "imageVolume") (not (regexMatch "@sha256:[0-9a-f]{64}$" $v.bundle.imageVolume.reference)) -}}
{{- fail "bundle.source=imageVolume needs bundle.imageVolume.reference pinned by digest (repository@sha256:...)" -}}
{{- end -}}
{{- if and $v.metrics.serviceMonitor.enabled (not $v.metrics.service.enabled) -}}
{{- fail "metrics.serviceMonitor.enabled needs metrics.service.enabled (the ServiceMonitor selects the Service)" -}}
{{- end -}}
{{- $floor := include "scoring-worker.firstAssignmentFloor" . | int -}}
{{- if lt (int $v.probes.startup.firstAssignmentSeconds) $floor -}}
{{- fail (printf "probes.startup.firstAssignmentSeconds=%d is below %d s (the consumer's session timeout plus the producer's transaction timeout): after a crash the first assignment can take that long, and the startup probe would restart the pod meanwhile" (int $v.probes.startup.firstAssignmentSeconds) $floor) -}}
{{- end -}}
{{- $_ := include "scoring-worker.terminationGracePeriodSeconds" . -}}
{{- end -}}

{{/* Restricted pod security standard: no root, no privilege escalation, no
capabilities, a read-only root filesystem (the worker writes nothing at run time). */}}
{{- define "scoring-worker.containerSecurityContext" -}}
runAsNonRoot: true
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* librdkafka's sasl.mechanism as KEDA's Kafka trigger names it. */}}
{{- define "scoring-worker.kedaSasl" -}}
{{- get (dict "PLAIN" "plaintext" "SCRAM-SHA-256" "scram_sha256" "SCRAM-SHA-512" "scram_sha512" "OAUTHBEARER" "oauthbearer" "GSSAPI" "gssapi") . -}}
{{- end -}}

{{/* Scaling behaviour shared by the ScaledObject's HPA and the CPU fallback: each scale
event is a rebalance, so pods come and go one at a time. */}}
{{- define "scoring-worker.hpaBehavior" -}}
{{- $b := .Values.autoscaling.behavior -}}
scaleUp:
  stabilizationWindowSeconds: {{ int $b.scaleUp.stabilizationWindowSeconds }}
  selectPolicy: Max
  policies:
    - type: Pods
      value: {{ int $b.scaleUp.podsPerPeriod }}
      periodSeconds: {{ int $b.scaleUp.periodSeconds }}
scaleDown:
  stabilizationWindowSeconds: {{ int $b.scaleDown.stabilizationWindowSeconds }}
  selectPolicy: Min
  policies:
    - type: Pods
      value: {{ int $b.scaleDown.podsPerPeriod }}
      periodSeconds: {{ int $b.scaleDown.periodSeconds }}
{{- end -}}

{{/* A librdkafka property's value in milliseconds from settings (SCORING_WORKER_KAFKA_
<PROPERTY>, or its consumer./producer.-scoped form), else librdkafka's default. */}}
{{- define "scoring-worker.kafkaMs" -}}
{{- $settings := index . 0 -}}
{{- $name := index . 1 -}}
{{- $scope := index . 2 -}}
{{- $default := index . 3 -}}
{{- $scoped := index $settings (printf "SCORING_WORKER_KAFKA_%s_%s" $scope $name) -}}
{{- $plain := index $settings (printf "SCORING_WORKER_KAFKA_%s" $name) -}}
{{- if not (kindIs "invalid" $scoped) -}}{{- $scoped | int -}}
{{- else if not (kindIs "invalid" $plain) -}}{{- $plain | int -}}
{{- else -}}{{- $default -}}
{{- end -}}
{{- end -}}

{{/* Seconds a restarted member may wait for its first assignment with stable offsets:
the dead member's session timeout (librdkafka: 45 s) plus the transaction timeout after
which the broker aborts the dead member's open transaction (60 s). */}}
{{- define "scoring-worker.firstAssignmentFloor" -}}
{{- $s := .Values.settings -}}
{{- $session := include "scoring-worker.kafkaMs" (list $s "SESSION_TIMEOUT_MS" "CONSUMER" 45000) | int -}}
{{- $txn := include "scoring-worker.kafkaMs" (list $s "TRANSACTION_TIMEOUT_MS" "PRODUCER" 60000) | int -}}
{{- if ne (index $s "SCORING_WORKER_DELIVERY" | default "exactly-once") "exactly-once" -}}{{- $txn = 0 -}}{{- end -}}
{{- divf (add $session $txn) 1000 | ceil | int -}}
{{- end -}}
