package realm

import "testing"

func BenchmarkClassify(b *testing.B) {
	body := []byte(`{"NameSpaceType":"Managed","Login":"a@contoso.com","DomainName":"contoso.com","FederationBrandName":"Contoso","cloud_instance_name":"microsoftonline.com","IsViral":false,"IsMicrosoftAccountSet":true,"MicrosoftAccount":1}`)
	for b.Loop() {
		if _, err := Classify(200, "", body); err != nil {
			b.Fatal(err)
		}
	}
}
