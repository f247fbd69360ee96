package llm

import (
	"encoding/json"
	"testing"
)

func TestScannerAgreesWithEncodingJSON(t *testing.T) {
	docs := []string{
		`{}`,
		` { "a" : 1 , "b":[1, {"c":"}]\"{["}, [], null], "d":{"e":{"f":[[["deep"]]]}}, "g":"\\\\", "h":true } `,
		`{"s":"a\"b\\\"c\\\\","t":"caf\u00e9 カフェ","u":-1.5e3,"v":"` + "long string that goes on past the eight byte words of the scanner, with \\\" an escape" + `"}`,
	}
	for _, doc := range docs {
		var want map[string]json.RawMessage
		if err := json.Unmarshal([]byte(doc), &want); err != nil {
			t.Fatalf("test document %s: %v", doc, err)
		}
		got := map[string]string{}
		o := objectOf([]byte(doc))
		for k, v, ok := o.next(); ok; k, v, ok = o.next() {
			got[string(k)] = string(v)
		}
		if !o.closed() {
			t.Errorf("%s: walk did not reach the end", doc)
		}
		if len(got) != len(want) {
			t.Errorf("%s: %d members, want %d", doc, len(got), len(want))
		}
		for k, v := range want {
			if got[k] != string(v) {
				t.Errorf("%s: member %s = %s, want %s", doc, k, got[k], v)
			}
		}
	}
}

func TestScannerRejectsMalformed(t *testing.T) {
	for _, doc := range []string{``, `{`, `{"a"}`, `{"a":}`, `{"a":1,}`, `{"a":1 "b":2}`, `{"a":"x}`, `{"a":[1,2}`, `[1]`, `{"a":1}x`} {
		o := objectOf([]byte(doc))
		for _, _, ok := o.next(); ok; _, _, ok = o.next() {
		}
		if o.closed() {
			t.Errorf("%q walked as a whole object", doc)
		}
	}
}

func TestArrayWalk(t *testing.T) {
	doc := []byte(`[ {"a":1}, "x" , [2,3] ,null]tail`)
	a := arrayOf(doc)
	var got []string
	for a.start() {
		v, _ := a.value()
		got = append(got, string(v))
	}
	if len(got) != 4 || got[0] != `{"a":1}` || got[2] != `[2,3]` || string(doc[a.end:]) != "tail" {
		t.Errorf("elements %q, rest %q", got, doc[a.end:])
	}
}

func TestInteger(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "1117": 1117, "3.9": 3, "1e3": 1000, "-1": -1, `"5"`: -1, "null": -1, "99999999999999999999": -1} {
		n, ok := integer([]byte(in))
		if !ok {
			n = -1
		}
		if n != want {
			t.Errorf("integer(%s) = %d, want %d", in, n, want)
		}
	}
}
