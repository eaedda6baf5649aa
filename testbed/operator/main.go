// Command operator reconciles apps.wandb.com/v1 WeightsAndBiases resources the way the W&B
// operator v1.22.0 does (finalizer, status.phase Loading / Completed / Invalid Config, a Helm
// release named after the resource in its namespace, helm uninstall on delete), with the real
// Helm library (Helm 4, the major version v1.22.0 links) and client-go. It runs out of cluster, as the test bed's operator: the W&B
// operator's own module is not served by the Go module proxy here.
package main

import (
	"context"
	"flag"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/workqueue"
)

var gvr = schema.GroupVersionResource{Group: "apps.wandb.com", Version: "v1", Resource: "weightsandbiases"}

const finalizer = "finalizer.app.wandb.com"

func main() {
	kubeconfig := flag.String("kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig of the cluster")
	flag.Parse()
	if os.Getenv("AIRGAPPED") != "true" {
		log.Fatal("only AIRGAPPED=true is supported: there is no release channel to call")
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		log.Fatalf("kubeconfig: %v", err)
	}
	cfg.UserAgent = "wandb-operator-testbed"
	client, err := dynamic.NewForConfig(cfg)
	if err != nil {
		log.Fatalf("client: %v", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	events, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		log.Fatalf("client: %v", err)
	}
	r := &reconciler{client: client, recorder: newRecorder(events), kubeconfig: *kubeconfig, applied: map[string]int64{}}
	run(ctx, client, r)
}

// waitForCRD polls until the resource is served: the product installs the CRD, and a
// reflector that started before it backs off for up to half a minute.
func waitForCRD(ctx context.Context, client dynamic.Interface) {
	for ctx.Err() == nil {
		if _, err := client.Resource(gvr).List(ctx, metav1.ListOptions{Limit: 1}); err == nil {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func run(ctx context.Context, client dynamic.Interface, r *reconciler) {
	waitForCRD(ctx, client)
	queue := workqueue.NewTypedRateLimitingQueue(workqueue.NewTypedItemExponentialFailureRateLimiter[string](200*time.Millisecond, 10*time.Second))
	factory := dynamicinformer.NewDynamicSharedInformerFactory(client, 30*time.Second)
	informer := factory.ForResource(gvr).Informer()
	enqueue := func(obj any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			queue.Add(key)
		}
	}
	_, _ = informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, o any) { enqueue(o) },
		DeleteFunc: enqueue,
	})
	factory.Start(ctx.Done())
	go func() { <-ctx.Done(); queue.ShutDown() }()
	log.Printf("watching %s", gvr)
	for {
		key, quit := queue.Get()
		if quit {
			return
		}
		requeue := reconcileKey(ctx, informer.GetIndexer(), r, key)
		if requeue {
			queue.AddRateLimited(key)
		} else {
			queue.Forget(key)
		}
		queue.Done(key)
	}
}

func reconcileKey(ctx context.Context, idx cache.Indexer, r *reconciler, key string) bool {
	obj, exists, err := idx.GetByKey(key)
	if err != nil || !exists {
		return false
	}
	u := obj.(*unstructured.Unstructured).DeepCopy()
	if err := r.reconcile(ctx, u); err != nil {
		log.Printf("%s: %v", key, err)
		return true
	}
	return false
}
