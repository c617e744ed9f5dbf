package vcon

import "testing"

// TestAppendJCS checks the canonical form against RFC 8785's own examples
// (3.2.2.3 numbers, 3.2.3 member order, 3.2.2.2 string escapes).
func TestAppendJCS(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"numbers", `[333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001, 1e21, 1e20, 0.000001, 1e-7, -0, 5e-324, -1.7976931348623157e308, 9007199254740992]`,
			`[333333333.3333333,1e+30,4.5,0.002,1e-27,1e+21,100000000000000000000,0.000001,1e-7,0,5e-324,-1.7976931348623157e+308,9007199254740992]`},
		{"member order by UTF-16 code units", `{"\u20ac":"Euro Sign","\r":"Carriage Return","\ufb33":"Hebrew Letter Dalet With Dagesh","1":"One","\ud83d\ude00":"Emoji: Grinning Face","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis"}`,
			"{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u0080\":\"Control\",\"\u00f6\":\"Latin Small Letter O With Diaeresis\",\"\u20ac\":\"Euro Sign\",\"\U0001F600\":\"Emoji: Grinning Face\",\"\ufb33\":\"Hebrew Letter Dalet With Dagesh\"}"},
		{"strings and literals", `{"string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/", "literals": [null, true, false], "nested": {"b": 1, "a": []}}`,
			"{\"literals\":[null,true,false],\"nested\":{\"a\":[],\"b\":1},\"string\":\"\u20ac$\\u000f\\nA'B\\\"\\\\\\\\\\\"/\"}"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			x, err := decode([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			got, err := AppendJCS(nil, x)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}
