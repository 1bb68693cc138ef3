{{/* Chart name, overridable. */}}
{{- define "chatcluster.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Prefix of every resource name: "<release>-chatcluster", or the release name alone when it
already contains the chart name. */}}
{{- define "chatcluster.fullname" -}}
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

{{- define "chatcluster.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "chatcluster.labels" -}}
helm.sh/chart: {{ include "chatcluster.chart" . }}
{{ include "chatcluster.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "chatcluster.selectorLabels" -}}
app.kubernetes.io/name: {{ include "chatcluster.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "chatcluster.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "chatcluster.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The namespace the operator reconciles; "" when it watches all namespaces. Also checks the
values that cannot be combined. */}}
{{- define "chatcluster.watchNamespace" -}}
{{- if .Values.watchAllNamespaces }}
{{- if .Values.watchNamespace }}
{{- fail "set either watchNamespace or watchAllNamespaces=true, not both" }}
{{- end }}
{{- else }}
{{- default .Release.Namespace .Values.watchNamespace }}
{{- end }}
{{- end }}

{{/* Where the example ChatCluster goes: the watched namespace, or the release namespace when the
operator watches them all. */}}
{{- define "chatcluster.exampleNamespace" -}}
{{- default .Release.Namespace (include "chatcluster.watchNamespace" .) }}
{{- end }}

{{- define "chatcluster.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The rules the operator needs on the watched namespace(s), shared by the Role and the
ClusterRole so both modes grant exactly the same. */}}
{{- define "chatcluster.rules" -}}
# ChatClusters: read, finalizer add/remove (update/patch), status writes.
- apiGroups: ["chatcluster.dev"]
  resources: ["chatclusters"]
  verbs: ["get", "list", "watch", "patch", "update"]
- apiGroups: ["chatcluster.dev"]
  resources: ["chatclusters/status"]
  verbs: ["get", "patch", "update"]
# Owner references with blockOwnerDeletion need update on the owner's finalizers subresource.
- apiGroups: ["chatcluster.dev"]
  resources: ["chatclusters/finalizers"]
  verbs: ["patch", "update"]
# The objects each ChatCluster owns, written with server-side apply (PATCH).
- apiGroups: ["apps"]
  resources: ["statefulsets"]
  verbs: ["create", "get", "list", "watch", "patch", "delete"]
- apiGroups: [""]
  resources: ["services", "configmaps"]
  verbs: ["create", "get", "list", "watch", "patch", "delete"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["create", "get", "list", "watch", "patch", "delete"]
- apiGroups: ["networking.k8s.io"]
  resources: ["ingresses", "networkpolicies"]
  verbs: ["create", "get", "list", "watch", "patch", "delete"]
# Gateway pods: watched for readiness and revision, annotated with their drain deadline (patch),
# deleted one at a time after they drained.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch", "patch", "delete"]
# Redis/PostgreSQL URLs given as urlSecretRef, read for cleanup; the gateways' admin token, read
# for the drain and status calls and created once (<cc>-admin-token) when the spec names none.
# Listed and watched so that a rotated Secret the pods read rolls them (a hash of the data they
# read goes on the pod template). Never updated or deleted (the ChatCluster's owner reference
# deletes the created one).
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch", "create"]
# The optional Gateway API route (spec.httpRoute); without the Gateway API CRDs these rules grant
# nothing and the operator says so in an Event.
- apiGroups: ["gateway.networking.k8s.io"]
  resources: ["httproutes"]
  verbs: ["create", "get", "patch", "delete"]
# The gateways' PodMonitor of spec.monitoring.podMonitor (Prometheus Operator), server-side
# applied, deleted when disabled. Never listed or watched; absent CRD = 404, which the operator
# reports in the Monitoring condition.
- apiGroups: ["monitoring.coreos.com"]
  resources: ["podmonitors"]
  verbs: ["create", "get", "patch", "delete"]
# Kubernetes Events on the ChatClusters (both APIs: core/v1 and events.k8s.io/v1).
- apiGroups: ["", "events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}
