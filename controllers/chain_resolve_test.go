package controllers

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stypes "k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	vconv1 "github.com/vcon-operator/vcon-operator/api/v1alpha1"
)

// The ingress check either finds the earlier Chain on the same Redis, or
// says it could not look: a failure to look is not "no conflict".
func TestIngressConflict(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := vconv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := corev1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 12, 2, 7, 0, 0, 0, time.UTC)
	chain := func(name string, age time.Duration, redis vconv1.RedisConnection) *vconv1.Chain {
		return &vconv1.Chain{
			ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, UID: k8stypes.UID("uid-" + name), CreationTimestamp: metav1.NewTime(t0.Add(-age))},
			Spec:       vconv1.ChainSpec{IngressLists: []string{"calls"}, Redis: redis},
		}
	}
	mine := chain("mine", 0, vconv1.RedisConnection{})
	bySecret := vconv1.RedisConnection{URLSecretRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "redis"}, Key: "url"}}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "redis"}, Data: map[string][]byte{"url": []byte("redis://user:pw@R:6379/0")}}
	failing := errors.New("the API server is away")

	tests := []struct {
		name    string
		objs    []client.Object
		funcs   interceptor.Funcs
		want    string // part of the IngressConflict message, "" for none
		wantErr bool
	}{
		{name: "alone", objs: []client.Object{mine}},
		{name: "an earlier Chain on the same Redis, spelled differently", objs: []client.Object{mine, chain("first", time.Hour, bySecret), secret},
			want: `ingress list "calls" is already consumed by Chain first on the same Redis`},
		{name: "a later Chain does not take the list", objs: []client.Object{mine, chain("second", -time.Hour, vconv1.RedisConnection{})}},
		{name: "an earlier Chain on another Redis", objs: []client.Object{mine, chain("first", time.Hour, vconv1.RedisConnection{URL: "redis://other:6379"})}},
		{name: "an earlier Chain whose Secret is gone consumes nothing", objs: []client.Object{mine, chain("first", time.Hour, bySecret)}},
		{name: "listing the Chains fails", objs: []client.Object{mine}, wantErr: true,
			funcs: interceptor.Funcs{List: func(context.Context, client.WithWatch, client.ObjectList, ...client.ListOption) error { return failing }}},
		{name: "reading the earlier Chain's Secret fails", objs: []client.Object{mine, chain("first", time.Hour, bySecret), secret}, wantErr: true,
			funcs: interceptor.Funcs{Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
				if _, ok := obj.(*corev1.Secret); ok {
					return failing
				}
				return c.Get(ctx, key, obj, opts...)
			}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(tt.objs...).
				WithIndex(&vconv1.Chain{}, indexIngress, func(o client.Object) []string { return o.(*vconv1.Chain).Spec.IngressLists }).
				WithInterceptorFuncs(tt.funcs).Build()
			r := &ChainReconciler{Client: c, APIReader: c, DefaultRedisURL: "redis://r:6379"}
			problem, err := r.ingressConflict(context.Background(), mine, "redis://r:6379")
			if tt.wantErr {
				if !errors.Is(err, failing) {
					t.Fatalf("problem %+v, error %v; want the failure returned", problem, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tt.want == "" && problem != nil:
				t.Fatalf("conflict %+v, want none", problem)
			case tt.want != "" && (problem == nil || problem.reason != vconv1.ReasonIngressConflict || !strings.Contains(problem.message, tt.want)):
				t.Fatalf("conflict %+v, want IngressConflict saying %q", problem, tt.want)
			}
		})
	}
}
