// Package workload builds, as pure functions, everything the operator
// creates for a Chain: the conserver config it renders from the Chain and
// its Links and Storages, the ConfigMap holding it, the Secret carrying its
// Redis URL, and the worker Deployment; and it holds the checks a Link or
// Storage must pass to be rendered (no literal credentials in options, no
// ${VAR} its own Secret references do not provide). Nothing here talks to
// a cluster; table-driven tests pin the objects down.
package workload

// Label and annotation keys the operator sets, in one place.
const (
	LabelName      = "app.kubernetes.io/name"
	LabelInstance  = "app.kubernetes.io/instance"
	LabelComponent = "app.kubernetes.io/component"
	LabelManagedBy = "app.kubernetes.io/managed-by"
	LabelChain     = "vcon.dev/chain"

	// AnnotationConfigHash on the pod template changes exactly when the
	// rendered config or the environment does, and so rolls the workers.
	AnnotationConfigHash = "vcon.dev/config-hash"

	WorkerName  = "vcon-worker"
	ManagedBy   = "vcon-operator"
	FieldOwner  = "vcon-operator"
	ConfigKey   = "conserver.yml"
	ConfigDir   = "/etc/vcon"
	MetricsPort = 9090
)

// Labels are set on every child of a Chain and on its worker pods; the
// chart's PodMonitor selects worker pods by LabelName.
func Labels(chain string) map[string]string {
	return map[string]string{
		LabelName:      WorkerName,
		LabelInstance:  chain,
		LabelComponent: "worker",
		LabelManagedBy: ManagedBy,
		LabelChain:     chain,
	}
}

// SelectorLabels select a Chain's worker pods; immutable once created.
func SelectorLabels(chain string) map[string]string {
	return map[string]string{LabelName: WorkerName, LabelChain: chain}
}

// DeploymentName and ConfigMapName name a Chain's children.
func DeploymentName(chain string) string { return chain + "-worker" }
func ConfigMapName(chain string) string  { return chain + "-conserver" }
