package workload

import (
	"fmt"
	"strconv"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	vconv1 "github.com/vcon-operator/vcon-operator/api/v1alpha1"
)

// Grace periods. A worker told to stop finishes its in-flight vCons; the
// pod's termination grace must cover the longest a vCon may take (the
// chain timeout) plus the time to write its outcome, so that scale-down
// never kills a vCon mid-chain.
const (
	DefaultWorkerGrace = 60 * time.Second
	graceMargin        = 30 * time.Second
)

// TerminationGrace is the pod's terminationGracePeriodSeconds for a chain.
func TerminationGrace(ch *vconv1.Chain) time.Duration {
	if ch.Spec.Timeout != nil && ch.Spec.Timeout.Duration > 0 {
		return ch.Spec.Timeout.Duration + graceMargin
	}
	return DefaultWorkerGrace
}

func owner(ch *vconv1.Chain) []metav1.OwnerReference {
	return []metav1.OwnerReference{*metav1.NewControllerRef(ch, vconv1.GroupVersion.WithKind("Chain"))}
}

// ConfigMap holds the rendered conserver config.
func ConfigMap(ch *vconv1.Chain, r *Rendered) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{
			Name: ConfigMapName(ch.Name), Namespace: ch.Namespace,
			Labels: Labels(ch.Name), OwnerReferences: owner(ch),
		},
		Data: map[string]string{ConfigKey: string(r.Config)},
	}
}

// Deployment is the worker Deployment of a chain with the given replicas.
func Deployment(in Inputs, r *Rendered, replicas int32) *appsv1.Deployment {
	ch := in.Chain
	grace := TerminationGrace(ch)
	concurrency := ch.Spec.Workers.Concurrency
	if concurrency < 1 {
		concurrency = 1
	}
	env := append(userEnv(ch), redisEnv(in))
	if in.QueuedRetention > 0 {
		env = append(env, corev1.EnvVar{Name: "VCON_QUEUED_RETENTION", Value: strconv.FormatInt(int64(in.QueuedRetention/time.Second), 10)})
	}
	env = append(env, r.Env...)

	worker := corev1.Container{
		Name:  "worker",
		Image: in.Image,
		// The image holds every binary; its entrypoint is the operator.
		Command: []string{"/conserver"},
		Args: []string{
			"--config=" + ConfigDir + "/" + ConfigKey,
			"--chain=" + ch.Name,
			"--http-addr=:" + strconv.Itoa(MetricsPort),
			"--concurrency=" + strconv.Itoa(int(concurrency)),
			// The worker returns unfinished vCons to the queue before the
			// kubelet's SIGKILL.
			"--grace-period=" + (grace - 10*time.Second).String(),
		},
		Env:     env,
		EnvFrom: append(userEnvFrom(ch), r.EnvFrom...),
		Ports:   []corev1.ContainerPort{{Name: "metrics", ContainerPort: MetricsPort, Protocol: corev1.ProtocolTCP}},
		// Until the worker is first ready, ask every second: a new pod of a
		// burst is counted Ready (and `kubectl get chains` says so) about a
		// second after it can work, not up to a readiness period later. On
		// real pods the 5 s period alone made 0 → 5 Ready take 6.5–8.4 s
		// (docs/benchmarks.md). Ten minutes of failures (Redis down at
		// start) restart it; liveness takes over once it has started.
		StartupProbe: &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/readyz", Port: intstr.FromString("metrics")}},
			PeriodSeconds: 1, FailureThreshold: 600,
		},
		ReadinessProbe: &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/readyz", Port: intstr.FromString("metrics")}},
			PeriodSeconds: 5, FailureThreshold: 3,
		},
		LivenessProbe: &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromString("metrics")}},
			PeriodSeconds: 10, FailureThreshold: 6,
		},
		Resources:       ch.Spec.Workers.Resources,
		SecurityContext: containerSecurity(),
		VolumeMounts: append([]corev1.VolumeMount{
			{Name: "config", MountPath: ConfigDir, ReadOnly: true},
			{Name: "tmp", MountPath: "/tmp"},
		}, userMounts(ch)...),
		// The worker writes a fatal error (a refused config) to the default
		// /dev/termination-log; a crash without one falls back to the log's
		// tail. The Chain's Ready condition shows either.
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
	}

	// Container steps run as native sidecars (restartPolicy Always init
	// containers): they are up before the worker takes work and stop after
	// it has finished its in-flight vCons.
	var initContainers []corev1.Container
	for _, s := range r.Sidecars {
		initContainers = append(initContainers, s)
	}

	labels := Labels(ch.Name)
	d := &appsv1.Deployment{
		TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{
			Name: DeploymentName(ch.Name), Namespace: ch.Namespace,
			Labels: labels, OwnerReferences: owner(ch),
		},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: SelectorLabels(ch.Name)},
			Strategy: appsv1.DeploymentStrategy{
				Type: appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{
					MaxUnavailable: ptr.To(intstr.FromInt32(0)),
					MaxSurge:       ptr.To(intstr.FromString("25%")),
				},
			},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{
					Labels:      podLabels(ch),
					Annotations: podAnnotations(ch, r.Hash),
				},
				Spec: corev1.PodSpec{
					EnableServiceLinks:            ptr.To(false),
					TerminationGracePeriodSeconds: ptr.To(int64(grace.Seconds())),
					SecurityContext: &corev1.PodSecurityContext{
						RunAsNonRoot:   ptr.To(true),
						RunAsUser:      ptr.To(int64(65532)),
						RunAsGroup:     ptr.To(int64(65532)),
						FSGroup:        ptr.To(int64(65532)),
						SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
					},
					InitContainers: initContainers,
					Containers:     []corev1.Container{worker},
					Volumes: append([]corev1.Volume{
						{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
							LocalObjectReference: corev1.LocalObjectReference{Name: ConfigMapName(ch.Name)},
						}}},
						{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
					}, userVolumes(ch)...),
				},
			},
		},
	}
	placePod(&d.Spec.Template.Spec, ch, in.PodDefaults)
	return d
}

// redisEnv is always a Secret reference: the Chain's own Secret, else the
// one the operator projects the URL into (RedisSecret). A literal value
// would put the password in the Deployment for anyone who may read it.
func redisEnv(in Inputs) corev1.EnvVar {
	ref := in.RedisSecret
	if ref == nil {
		ref = ProjectedRedisRef(in.Chain.Name)
	}
	return corev1.EnvVar{Name: "REDIS_URL", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: ref.DeepCopy()}}
}

func containerSecurity() *corev1.SecurityContext {
	return &corev1.SecurityContext{
		AllowPrivilegeEscalation: ptr.To(false),
		ReadOnlyRootFilesystem:   ptr.To(true),
		RunAsNonRoot:             ptr.To(true),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
}

// stepSidecar runs a Link container step beside the worker.
func stepSidecar(l *vconv1.Link) *corev1.Container {
	c := l.Spec.Container
	return &corev1.Container{
		Name:          fmt.Sprintf("step-%s", l.Name),
		Image:         c.Image,
		RestartPolicy: ptr.To(corev1.ContainerRestartPolicyAlways),
		Ports:         []corev1.ContainerPort{{Name: "step", ContainerPort: c.Port, Protocol: corev1.ProtocolTCP}},
		StartupProbe: &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(c.Port)}},
			PeriodSeconds: 2, FailureThreshold: 60,
		},
		Resources:       c.Resources,
		SecurityContext: containerSecurity(),
	}
}

// userVolumes and userMounts are the Chain's workers.volumes.
func userVolumes(ch *vconv1.Chain) []corev1.Volume {
	var out []corev1.Volume
	for _, v := range ch.Spec.Workers.Volumes {
		src := corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}
		if v.ClaimName != "" {
			src = corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: v.ClaimName, ReadOnly: v.ReadOnly}}
		}
		out = append(out, corev1.Volume{Name: "user-" + v.Name, VolumeSource: src})
	}
	return out
}

func userMounts(ch *vconv1.Chain) []corev1.VolumeMount {
	var out []corev1.VolumeMount
	for _, v := range ch.Spec.Workers.Volumes {
		out = append(out, corev1.VolumeMount{Name: "user-" + v.Name, MountPath: v.MountPath, ReadOnly: v.ReadOnly})
	}
	return out
}
