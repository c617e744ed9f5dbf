package workload

import (
	"reflect"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
)

func TestLiteralCredentials(t *testing.T) {
	tests := []struct {
		name    string
		options string
		want    []string
	}{
		{"none", `{"tags":["a:b"]}`, nil},
		{"env reference", `{"OPENAI_API_KEY":"${OPENAI_API_KEY}","password":"${PG_PASSWORD:-x}"}`, nil},
		{"literal api key", `{"OPENAI_API_KEY":"sk-123","model":"gpt-4o"}`, []string{"OPENAI_API_KEY"}},
		{"literal password and token", `{"password":"hunter2","token":"xoxb-1","host":"db"}`, []string{"password", "token"}},
		{"nested header", `{"headers":{"Authorization":"Bearer abc"},"webhook-urls":["http://x"]}`, []string{"headers.Authorization"}},
		{"deepgram and aws", `{"DEEPGRAM_KEY":"k","aws_secret_access_key":"s","aws_access_key_id":"${AWS_ID}"}`, []string{"DEEPGRAM_KEY", "aws_secret_access_key"}},
		{"an escaped $${ is a literal, not a reference", `{"password":"$${hunter2}"}`, []string{"password"}},
		{"empty value is not a credential", `{"api_key":""}`, nil},
		{"tag named key is not a credential", `{"tag_name":"k","key_points":"yes"}`, nil},
		{"null options", `null`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := LiteralCredentials(&apiextensionsv1.JSON{Raw: []byte(tt.options)})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("LiteralCredentials(%s) = %v, want %v", tt.options, got, tt.want)
			}
		})
	}
}
