package devsys

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// managedService is a Service without a selector whose one endpoint is a
// process on the node's address: how a cluster names a database that runs
// outside it. Pods find it by DNS and reach it through kube-proxy.
func managedService(namespace, name string, ip string, port int32) (*corev1.Service, *discoveryv1.EndpointSlice) {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: map[string]string{"app.kubernetes.io/part-of": "vcon-dev"}},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{
			Name: name, Port: port, TargetPort: intstr.FromInt32(port), Protocol: corev1.ProtocolTCP,
		}}},
	}
	eps := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: map[string]string{
			discoveryv1.LabelServiceName: name,
			discoveryv1.LabelManagedBy:   "vcon-dev",
		}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{ip}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}},
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To(name), Port: ptr.To(port), Protocol: ptr.To(corev1.ProtocolTCP)}},
	}
	return svc, eps
}

// createManagedServices names Redis (redis.vcon-system, the chart's
// default redis://redis:6379/0) and PostgreSQL (postgres.databases, the
// samples' host) inside the cluster.
func (s *System) createManagedServices(ctx context.Context) error {
	type want struct {
		ns, name string
		port     int32
	}
	wants := []want{{ReleaseNamespace, "redis", redisPort}}
	if s.Postgres != nil {
		wants = append(wants, want{DatabaseNamespace, "postgres", postgresPort})
	}
	for _, w := range wants {
		if err := s.ensureNamespace(ctx, w.ns); err != nil {
			return err
		}
		svc, eps := managedService(w.ns, w.name, s.Node.IP, w.port)
		if _, err := s.Kube.CoreV1().Services(w.ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create Service %s/%s: %w", w.ns, w.name, err)
		}
		if _, err := s.Kube.DiscoveryV1().EndpointSlices(w.ns).Create(ctx, eps, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create EndpointSlice %s/%s: %w", w.ns, w.name, err)
		}
	}
	return nil
}

func (s *System) ensureNamespace(ctx context.Context, name string) error {
	_, err := s.Kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s: %w", name, err)
	}
	return nil
}
