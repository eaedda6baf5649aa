// Command altinity reconciles clickhouse.altinity.com/v1 ClickHouseInstallations (and
// ClickHouseKeeperInstallations alike, their Service keeper-<name>) the way the Altinity
// ClickHouse operator does, as far as the product can see it, while an operator Deployment
// (labelled app=clickhouse-operator) is ready in the cluster: a finalizer, one
// StatefulSet and one Service per host (chi-<chi>-<cluster>-<shard>-<replica>), the
// installation's Service clickhouse-<chi>, the common and per-host ConfigMaps, and a status
// that goes InProgress then Completed (with taskID, taskIDsStarted/Completed, hosts,
// hostsCompleted, fqdns, endpoint and no observedGeneration) once the real StatefulSet
// controller reports every host ready. On delete it removes what it made, claims included
// (reclaimPolicy Delete), then the finalizer. The operator's own module is not served by the Go
// module proxy here; this runs out of cluster on the test bed instead.
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
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/workqueue"
)

var (
	chiGVR = schema.GroupVersionResource{Group: "clickhouse.altinity.com", Version: "v1", Resource: "clickhouseinstallations"}
	chkGVR = schema.GroupVersionResource{Group: "clickhouse-keeper.altinity.com", Version: "v1", Resource: "clickhousekeeperinstallations"}
)

const finalizer = "finalizer.clickhouseinstallation.altinity.com"

func main() {
	kubeconfig := flag.String("kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig of the cluster")
	flag.Parse()
	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		log.Fatalf("kubeconfig: %v", err)
	}
	cfg.UserAgent = "clickhouse-operator-testbed"
	client, err := dynamic.NewForConfig(cfg)
	if err != nil {
		log.Fatalf("client: %v", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go run(ctx, &reconciler{client: client, gvr: chkGVR})
	run(ctx, &reconciler{client: client, gvr: chiGVR})
}

// waitForCRD polls until the resource is served: the operator's install makes its CRDs.
func waitForCRD(ctx context.Context, client dynamic.Interface, gvr schema.GroupVersionResource) {
	for ctx.Err() == nil {
		if _, err := client.Resource(gvr).List(ctx, metav1.ListOptions{Limit: 1}); err == nil {
			return
		}
		time.Sleep(time.Second)
	}
}

func run(ctx context.Context, r *reconciler) {
	waitForCRD(ctx, r.client, r.gvr)
	queue := workqueue.NewTypedRateLimitingQueue(workqueue.NewTypedItemExponentialFailureRateLimiter[string](200*time.Millisecond, 10*time.Second))
	factory := dynamicinformer.NewDynamicSharedInformerFactory(r.client, 30*time.Second)
	informer := factory.ForResource(r.gvr).Informer()
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
	log.Printf("watching %s", r.gvr)
	for {
		key, quit := queue.Get()
		if quit {
			return
		}
		switch after, err := reconcileKey(ctx, informer.GetIndexer(), r, key); {
		case err != nil:
			log.Printf("%s: %v", key, err)
			queue.AddRateLimited(key)
		case after > 0:
			queue.Forget(key)
			queue.AddAfter(key, after)
		default:
			queue.Forget(key)
		}
		queue.Done(key)
	}
}

// reconcileKey reconciles one installation; a positive duration asks to look again then (hosts
// not ready yet, or objects still being deleted).
func reconcileKey(ctx context.Context, idx cache.Indexer, r *reconciler, key string) (time.Duration, error) {
	obj, exists, err := idx.GetByKey(key)
	if err != nil || !exists {
		return 0, err
	}
	return r.reconcile(ctx, obj.(*unstructured.Unstructured).DeepCopy())
}
