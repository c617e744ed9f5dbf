package controllers

import (
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	vconv1 "github.com/vcon-operator/vcon-operator/api/v1alpha1"
	"github.com/vcon-operator/vcon-operator/internal/workload"
)

func TestStepConditionsPure(t *testing.T) {
	forbidden := &workload.ForbiddenReference{Step: "storage pg", Key: "options.password", Var: "PG_PASSWORD"}
	tests := []struct {
		name      string
		module    func(*vconv1.Link) string
		options   string
		forbidden *workload.ForbiddenReference
		want      map[vconv1.ConditionType]want
	}{
		{name: "valid", options: `{"tags":["a:b"]}`, want: map[vconv1.ConditionType]want{
			vconv1.ConditionReady:                {metav1.ConditionTrue, "Valid", "the worker runs this step"},
			vconv1.ConditionCredentialsInSecrets: {metav1.ConditionTrue, "NoLiteralCredentials", ""},
			vconv1.ConditionEnvReferencesOwn:     {metav1.ConditionTrue, "OwnVariablesOnly", ""},
		}},
		{name: "unknown module", module: linkKind.module, want: map[vconv1.ConditionType]want{
			vconv1.ConditionReady: {metav1.ConditionFalse, "UnknownModule", `module "links.nope" is not built into the worker (known: `},
		}},
		{name: "literal credential", options: `{"OPENAI_API_KEY":"sk-live"}`, want: map[vconv1.ConditionType]want{
			vconv1.ConditionReady:                {metav1.ConditionTrue, "Valid", ""},
			vconv1.ConditionCredentialsInSecrets: {metav1.ConditionFalse, "LiteralCredential", "OPENAI_API_KEY"},
		}},
		{name: "someone else's variable", forbidden: forbidden, want: map[vconv1.ConditionType]want{
			vconv1.ConditionEnvReferencesOwn: {metav1.ConditionFalse, "EnvReferenceNotAllowed", "options.password references ${PG_PASSWORD}"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := &vconv1.Link{Spec: vconv1.LinkSpec{Module: "links.nope"}}
			unknown := ""
			if tt.module != nil {
				unknown = tt.module(l)
			}
			var options *apiextensionsv1.JSON
			if tt.options != "" {
				options = &apiextensionsv1.JSON{Raw: []byte(tt.options)}
			}
			got := stepConditions(3, unknown, linkKind.valid, options, tt.forbidden)
			if len(got) != 3 {
				t.Fatalf("%d conditions, want Ready, CredentialsInSecrets and EnvReferencesOwn: %+v", len(got), got)
			}
			for _, c := range got {
				if c.ObservedGeneration != 3 {
					t.Errorf("%s observedGeneration %d, want 3", c.Type, c.ObservedGeneration)
				}
				w, ok := tt.want[vconv1.ConditionType(c.Type)]
				if ok && (c.Status != w.status || c.Reason != w.reason || !strings.Contains(c.Message, w.msg)) {
					t.Errorf("%s = %s/%s %q, want %s/%s containing %q", c.Type, c.Status, c.Reason, c.Message, w.status, w.reason, w.msg)
				}
			}
		})
	}
}
