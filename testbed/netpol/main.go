// netpol judges traffic against Kubernetes NetworkPolicies with cyclonus's policy matcher (the
// engine SIG Network's policy-assistant grew from), so that tests of the policies wbstack makes
// are judged by an implementation of the NetworkPolicy rules that is not wbstack's.
//
// Input (stdin, JSON): {"policies": [NetworkPolicy...], "cases": [{"from": Peer, "to": Peer,
// "port": 8080, "portName": "http", "protocol": "TCP"}]}, where a Peer is an in-cluster pod
// {"namespace", "namespaceLabels", "podLabels", "ip"} or an address outside {"ip"}.
// Output (stdout, JSON): one verdict per case, in order: {"allowed", "ingress", "egress"}.
package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/mattfenwick/cyclonus/pkg/matcher"
	v1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

type peer struct {
	Namespace       string            `json:"namespace"`
	NamespaceLabels map[string]string `json:"namespaceLabels"`
	PodLabels       map[string]string `json:"podLabels"`
	IP              string            `json:"ip"`
}

type trafficCase struct {
	From     peer   `json:"from"`
	To       peer   `json:"to"`
	Port     int    `json:"port"`
	PortName string `json:"portName"`
	Protocol string `json:"protocol"`
}

type input struct {
	Policies []*networkingv1.NetworkPolicy `json:"policies"`
	Cases    []trafficCase                 `json:"cases"`
}

type verdict struct {
	Allowed bool `json:"allowed"`
	Ingress bool `json:"ingress"`
	Egress  bool `json:"egress"`
}

func (p peer) traffic() *matcher.TrafficPeer {
	if p.Namespace == "" {
		return &matcher.TrafficPeer{IP: p.IP}
	}
	ns := p.NamespaceLabels
	if ns == nil {
		ns = map[string]string{}
	}
	// As the API server labels every namespace.
	ns["kubernetes.io/metadata.name"] = p.Namespace
	return &matcher.TrafficPeer{
		IP: p.IP,
		Internal: &matcher.InternalPeer{
			Namespace:       p.Namespace,
			NamespaceLabels: ns,
			PodLabels:       p.PodLabels,
		},
	}
}

func main() {
	var in input
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		fmt.Fprintf(os.Stderr, "netpol: reading the input: %v\n", err)
		os.Exit(2)
	}
	policy := matcher.BuildNetworkPolicies(false, in.Policies)
	out := make([]verdict, 0, len(in.Cases))
	for _, c := range in.Cases {
		protocol := v1.Protocol(c.Protocol)
		if protocol == "" {
			protocol = v1.ProtocolTCP
		}
		r := policy.IsTrafficAllowed(&matcher.Traffic{
			Source:           c.From.traffic(),
			Destination:      c.To.traffic(),
			ResolvedPort:     c.Port,
			ResolvedPortName: c.PortName,
			Protocol:         protocol,
		})
		out = append(out, verdict{Allowed: r.IsAllowed(), Ingress: r.Ingress.IsAllowed(), Egress: r.Egress.IsAllowed()})
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fmt.Fprintf(os.Stderr, "netpol: writing the verdicts: %v\n", err)
		os.Exit(2)
	}
}
