package main

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"
)

// The source the W&B operator v1 records its events under.
const source = "weightsandbiases-controller"

// newRecorder is client-go's event recorder, as controller-runtime gives the operator: repeated
// events are aggregated into one with a count.
func newRecorder(c kubernetes.Interface) record.EventRecorder {
	b := record.NewBroadcaster()
	b.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: c.CoreV1().Events("")})
	return b.NewRecorder(scheme.Scheme, corev1.EventSource{Component: source})
}

func (r *reconciler) event(u *unstructured.Unstructured, reason, message string) {
	r.recorder.Event(u, corev1.EventTypeNormal, reason, message)
}
