{{/* Name of the chart, cut to 63 characters as label values must be. */}}
{{- define "clara-operator.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: the release name, with the chart name appended unless the release name has it. */}}
{{- define "clara-operator.fullname" -}}
{{- if contains .Chart.Name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "clara-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "clara-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end }}

{{- define "clara-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "clara-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: clara-operator
{{- end }}

{{- define "clara-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "clara-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The rules the operator needs on the namespaces it watches: in one ClusterRole when it watches
every namespace, else in a Role per watched namespace. deploy/base/rbac.yaml holds the same rules
(test/unit/deploy checks they agree); test/integration/deploy-rbac.test.ts shows a run and a
deletion fail without any one of them.
*/}}
{{- define "clara-operator.watchRules" -}}
# The ClaraInstance reflector lists, then watches, every instance in the watched namespaces
# (src/controller/clarainstance/controller.ts). No `get`: reads come from that cache.
- apiGroups: [clara-operator.io]
  resources: [clarainstances]
  verbs: [list, watch]
# The finalizer is added before the ClearML task is made and removed once the task is cleaned
# up, by a JSON patch that tests the resourceVersion (clara-api.ts setFinalizer). No `update`.
- apiGroups: [clara-operator.io]
  resources: [clarainstances]
  verbs: [patch]
# Status is replaced through the status subresource with the resourceVersion it was decided
# on (src/k8s/status-writer.ts): phase, task id, scalars, models, conditions.
- apiGroups: [clara-operator.io]
  resources: [clarainstances/status]
  verbs: [update]
# The agent-pod reflector lists and watches the operator's agent pods (label selector
# app.kubernetes.io/managed-by=clara-operator); RBAC cannot narrow by label.
- apiGroups: ['']
  resources: [pods]
  verbs: [list, watch]
# One agent pod per run (agent.mode Execute) runs clearml-agent for the task.
- apiGroups: ['']
  resources: [pods]
  verbs: [create]
# A run that is suspended, ended or replaced has its still-running agent pod deleted, so it
# does not hold a GPU (reconcile.ts ensureAgentPod).
- apiGroups: ['']
  resources: [pods]
  verbs: [delete]
# The ClearML credentials Secret an instance names (or the default one) is read by name,
# in the instance's namespace. Only `get`: the operator cannot list or watch Secrets.
- apiGroups: ['']
  resources: [secrets]
  verbs: [get]
# One Event per transition (task created, enqueued, pod created, phase changed), as
# events.k8s.io/v1 (src/k8s/event-recorder.ts).
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create]
# The same Event again within 10 minutes raises its series.count instead of adding an Event.
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [patch]
{{- end }}

{{/* Leader election: the Lease in the release namespace. */}}
{{- define "clara-operator.leaderElectionRules" -}}
# The first replica creates the Lease (src/k8s/lease-lock.ts). RBAC cannot limit `create` to a
# name, so this rule stands alone.
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  verbs: [create]
# Every replica reads the Lease; the leader renews it and a standby takes it over when it
# expires, both by update with the resourceVersion read. Only this one Lease.
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  resourceNames: [{{ .Values.leaderElection.leaseName }}]
  verbs: [get, update]
{{- end }}

{{/*
A memory quantity in MiB, as a decimal number; empty when the quantity is not one the chart can
read. Reads the forms Kubernetes accepts for a quantity: a number of bytes, with decimals or not,
followed by nothing, a binary suffix (Ki Mi Gi Ti Pi Ei), a decimal one (k M G T P E, and m for
thousandths, as the apiserver writes 1.2Gi back) or an exponent (1e9, 5E8).
*/}}
{{- define "clara-operator.memoryMiB" -}}
{{- $pattern := `^([0-9]+\.?[0-9]*|\.[0-9]+)(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E|[eE][+-]?[0-9]+)?$` }}
{{- if regexMatch $pattern . }}
{{- $number := float64 (regexReplaceAll $pattern . "${1}") }}
{{- $suffix := regexReplaceAll $pattern . "${2}" }}
{{- $factors := dict "" 1.0 "m" 0.001 "k" 1e3 "M" 1e6 "G" 1e9 "T" 1e12 "P" 1e15 "E" 1e18 "Ki" 1024.0 "Mi" 1048576.0 "Gi" 1073741824.0 "Ti" 1099511627776.0 "Pi" 1125899906842624.0 "Ei" 1152921504606846976.0 }}
{{- /* An exponent suffix is the factor itself once prefixed with 1: "e9" is 1e9. */}}
{{- $factor := ternary (get $factors $suffix) (float64 (print "1" $suffix)) (hasKey $factors $suffix) }}
{{- divf (mulf $number $factor) 1048576.0 }}
{{- end }}
{{- end }}
