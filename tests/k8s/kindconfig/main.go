// Command kindconfig decodes kind cluster configs with kind's own v1alpha4 types, strictly: an unknown or misspelt
// field is an error, as it is for `kind create cluster --config`. It prints each config, defaulted, as JSON.
package main

import (
	"encoding/json"
	"fmt"
	"os"

	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
	"sigs.k8s.io/yaml"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: kindconfig CONFIG.yaml...")
		os.Exit(2)
	}
	for _, path := range os.Args[1:] {
		if err := check(path); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", path, err)
			os.Exit(1)
		}
	}
}

func check(path string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var cluster v1alpha4.Cluster
	if err := yaml.UnmarshalStrict(raw, &cluster); err != nil {
		return err
	}
	if cluster.Kind != "Cluster" || cluster.APIVersion != "kind.x-k8s.io/v1alpha4" {
		return fmt.Errorf("not a kind.x-k8s.io/v1alpha4 Cluster: %s %s", cluster.APIVersion, cluster.Kind)
	}
	v1alpha4.SetDefaultsCluster(&cluster)
	out, err := json.Marshal(cluster)
	if err != nil {
		return err
	}
	fmt.Println(string(out))
	return nil
}
