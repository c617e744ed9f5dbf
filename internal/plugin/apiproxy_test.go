package plugin

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/vcon-operator/vcon-operator/internal/api"
	"github.com/vcon-operator/vcon-operator/internal/testenv"
)

// proxiedAPI is our API running in this process, behind a Service of the
// test API server that its service proxy reaches.
//
// envtest has no kubelet and no kube-proxy, but the API server's service
// proxy (/api/v1/namespaces/NS/services/NAME:PORT/proxy/...) does not need
// them: it picks an address from the Service's Endpoints and dials it
// itself. So the Service has no selector and its EndpointSlice (which the
// 1.37 API server reads; Endpoints alone are not enough) names this
// process's listener. The API server checks two things before it dials
// (ResourceLocation of the service registry): the endpoint must point
// (targetRef) at a Pod whose status.podIPs hold its address, and the
// address must not be loopback or link-local (proxyutil.IsProxyableIP). So a Pod object stands
// in for the API's pod, with this machine's first non-loopback IPv4 address
// written into its status, and the listener is on that address, not on
// 127.0.0.1. No kubelet ever runs the Pod; the API server only reads it.
type proxiedAPI struct {
	namespace, service string
	token              string
}

// startProxiedAPI serves api.New on r's Redis and publishes it as the
// chart would: a Service labelled like the chart's, annotated with its
// token Secret, and that Secret.
func startProxiedAPI(t *testing.T, ns string, r *testenv.Redis) *proxiedAPI {
	t.Helper()
	ctx := context.Background()
	token := "tok-" + strconv.FormatInt(nsSeq.Add(1), 10) + "-Zq8sLw2"
	srv, err := api.New(r.Client(), api.Options{Tokens: []string{token}})
	if err != nil {
		t.Fatal(err)
	}
	ip := proxyableIP(t)
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	t.Cleanup(func() { _ = hs.Close(); _ = srv.Close() })
	port := int32(ln.Addr().(*net.TCPAddr).Port)

	name := "vcon-api"
	labels := map[string]string{"app.kubernetes.io/part-of": "vcon-operator", "app.kubernetes.io/component": "api"}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels,
			Annotations: map[string]string{AnnotationTokenSecret: "vcon-api-token", AnnotationTokenKey: "token"}},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 8000, Protocol: corev1.ProtocolTCP}}},
	}
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: name + "-1", Labels: map[string]string{discoveryv1.LabelServiceName: name}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{{Addresses: []string{ip}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)},
			TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: name}}},
		Ports: []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To(port), Protocol: ptr.To(corev1.ProtocolTCP)}},
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "vcon-api-token"}, StringData: map[string]string{"token": token}}
	c := testKube.Client
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "api", Image: "vcon-operator:test"}}},
	}
	if err := c.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}}}
	if err := c.Status().Update(ctx, pod); err != nil {
		t.Fatal(err)
	}
	for _, err := range []error{c.Create(ctx, svc), c.Create(ctx, slice), c.Create(ctx, secret)} {
		if err != nil {
			t.Fatalf("publish the API: %v", err)
		}
	}
	return &proxiedAPI{namespace: ns, service: name, token: token}
}

// flags select this API by discovery, as a user's plugin would find the
// chart's in vcon-system.
func (p *proxiedAPI) flags() []string {
	return []string{"--via", "api", "--api-namespace", p.namespace}
}

// proxyableIP is this machine's first non-loopback, non-link-local IPv4
// address: one the API server agrees to proxy to.
func proxyableIP(t *testing.T) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip := n.IP.To4(); ip != nil && !ip.IsLoopback() && !ip.IsLinkLocalUnicast() {
				return ip.String()
			}
		}
	}
	t.Fatal(errors.New("this machine has no non-loopback IPv4 address for the API server to proxy to"))
	return ""
}
