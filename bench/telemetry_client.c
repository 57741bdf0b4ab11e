/* Telemetry ingestion, measured two ways with the same readings, so that
 * bulwark can be compared with the limit of the server behind it:
 *
 *   telemetry_client mongo URI THREADS BATCHES BATCH
 *       the limit: the documents bulwark would store for these readings
 *       (_id, tenant_id, device_id, msg_id, ts, received_at, data), written
 *       straight to the collection `telemetry` with insert_many, unordered,
 *       under bulwark's default write concern (majority, journal, wtimeout
 *       4000 ms); one single-threaded client per thread, like one worker.
 *   telemetry_client http HOST:PORT API_KEY THREADS BATCHES BATCH
 *       the same readings as JSON batches POSTed to bulwark through nginx
 *       (POST /v1/devices/bench-batch/telemetry; a batch of one is sent as a
 *       bare object), each reading with a fresh msg_id; every answer must be
 *       201 with every reading stored.
 *   telemetry_client reset URI
 *       deletes every document of `telemetry` (jongodb has no drop).
 *
 * BATCHES batches of BATCH readings in all, shared by THREADS threads. A
 * fixed amount of work, not a fixed time: on jongodb every write costs in
 * proportion to the collection's size, so both sides must start from an
 * empty collection and write as much. Prints "readings/s N (batches B,
 * seconds S)"; exit 1 on any failed batch. Built by bench/run. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <mongoc/mongoc.h>

#define TENANT "00000000-0000-0000-0000-00000000bench"
#define DEVICE "bench-batch"

static const char *target, *api_key;
static struct sockaddr_in http_addr;
static long nbatches, batch;
static atomic_long next_batch, failed;
static char run_id[32];

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int64_t
wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the limit: insert_many straight to MongoDB ---- */

static void
document(bson_t *doc, int64_t now, long b, long i)
{
	char msg_id[96];
	bson_oid_t oid;
	bson_t data;

	snprintf(msg_id, sizeof(msg_id), "%s-%ld-%ld", run_id, b, i);
	bson_oid_init(&oid, NULL);
	BSON_APPEND_OID(doc, "_id", &oid);
	BSON_APPEND_UTF8(doc, "tenant_id", TENANT);
	BSON_APPEND_UTF8(doc, "device_id", DEVICE);
	BSON_APPEND_UTF8(doc, "msg_id", msg_id);
	BSON_APPEND_DATE_TIME(doc, "ts", now);
	BSON_APPEND_DATE_TIME(doc, "received_at", now);
	BSON_APPEND_DOCUMENT_BEGIN(doc, "data", &data);
	BSON_APPEND_UTF8(&data, "msg_id", msg_id);
	BSON_APPEND_DOUBLE(&data, "temp", 21.5);
	BSON_APPEND_INT32(&data, "hum", 40);
	BSON_APPEND_INT32(&data, "seq", (int32_t)i);
	bson_append_document_end(doc, &data);
}

static void *
run_mongo(void *arg)
{
	mongoc_client_t *client = mongoc_client_new(target);
	mongoc_collection_t *coll = NULL;
	mongoc_write_concern_t *wc = mongoc_write_concern_new();
	bson_t opts = BSON_INITIALIZER;
	bson_t **docs = calloc((size_t)batch, sizeof(*docs));
	bson_error_t err;
	long b;

	(void)arg;
	if (client == NULL || docs == NULL) {
		atomic_fetch_add(&failed, 1);
		goto done;
	}
	mongoc_client_set_error_api(client, MONGOC_ERROR_API_VERSION_2);
	coll = mongoc_client_get_collection(client, "bulwark", "telemetry");
	mongoc_write_concern_set_w(wc, MONGOC_WRITE_CONCERN_W_MAJORITY);
	mongoc_write_concern_set_journal(wc, true);
	mongoc_write_concern_set_wtimeout_int64(wc, 4000);
	BSON_APPEND_BOOL(&opts, "ordered", false);
	mongoc_write_concern_append(wc, &opts);
	while ((b = atomic_fetch_add(&next_batch, 1)) < nbatches) {
		int64_t now = wall_ms();
		for (long i = 0; i < batch; i++) {
			docs[i] = bson_new();
			document(docs[i], now, b, i);
		}
		if (!mongoc_collection_insert_many(coll, (const bson_t **)docs, (size_t)batch,
		                                   &opts, NULL, &err)) {
			fprintf(stderr, "telemetry_client: insert_many: %s\n", err.message);
			atomic_fetch_add(&failed, 1);
		}
		for (long i = 0; i < batch; i++)
			bson_destroy(docs[i]);
	}
done:
	mongoc_collection_destroy(coll);
	free(docs);
	bson_destroy(&opts);
	mongoc_write_concern_destroy(wc);
	mongoc_client_destroy(client);
	return NULL;
}

/* ---- bulwark: the same readings as JSON over HTTP ---- */

static char *
json_batch(long b, size_t *len)
{
	size_t cap = (size_t)batch * 160 + 16, n = 0;
	char *s = malloc(cap);

	if (s == NULL)
		return NULL;
	/* A batch of one is sent as the reading itself. */
	if (batch > 1)
		s[n++] = '[';
	for (long i = 0; i < batch; i++)
		n += (size_t)snprintf(
		    s + n, cap - n,
		    "%s{\"msg_id\":\"%s-%ld-%ld\",\"temp\":21.5,\"hum\":40,\"seq\":%ld}",
		    i ? "," : "", run_id, b, i, i);
	if (batch > 1)
		s[n++] = ']';
	*len = n;
	return s;
}

/* One POST over a fresh connection; 0 when the answer is 201 with every
 * reading stored. */
static int
post(const char *body, size_t len)
{
	char head[512], buf[65536];
	size_t got = 0;
	ssize_t r;
	int fd = socket(AF_INET, SOCK_STREAM, 0), rc = -1;

	if (fd < 0 || connect(fd, (struct sockaddr *)&http_addr, sizeof(http_addr)) < 0)
		goto done;
	int hl = snprintf(head, sizeof(head),
	                  "POST /v1/devices/" DEVICE "/telemetry HTTP/1.1\r\nHost: bench\r\n"
	                  "Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
	                  "Content-Length: %zu\r\nConnection: close\r\n\r\n",
	                  api_key, len);
	if (write(fd, head, (size_t)hl) != hl || write(fd, body, len) != (ssize_t)len)
		goto done;
	while (got < sizeof(buf) - 1 && (r = read(fd, buf + got, sizeof(buf) - 1 - got)) > 0)
		got += (size_t)r;
	buf[got] = '\0';
	char want[48];
	snprintf(want, sizeof(want), "\"stored\":%ld,", batch);
	if (strncmp(buf, "HTTP/1.1 201", 12) == 0 && strstr(buf, want) != NULL)
		rc = 0;
	else
		fprintf(stderr, "telemetry_client: %.300s\n", buf);
done:
	if (fd >= 0)
		close(fd);
	return rc;
}

static void *
run_http(void *arg)
{
	long b;

	(void)arg;
	while ((b = atomic_fetch_add(&next_batch, 1)) < nbatches) {
		size_t len;
		char *body = json_batch(b, &len);
		if (body == NULL || post(body, len) < 0)
			atomic_fetch_add(&failed, 1);
		free(body);
	}
	return NULL;
}

/* ---- main ---- */

static long
arg_long(const char *s, long min, long max)
{
	char *end;
	long v = strtol(s, &end, 10);

	return *s != '\0' && *end == '\0' && v >= min && v <= max ? v : -1;
}

/* Empties the collection (jongodb has no drop; the indexes stay). */
static int
reset(const char *uri)
{
	mongoc_client_t *client = mongoc_client_new(uri);
	mongoc_collection_t *coll;
	bson_t all = BSON_INITIALIZER;
	bson_error_t err;
	int rc = 0;

	if (client == NULL)
		return 1;
	coll = mongoc_client_get_collection(client, "bulwark", "telemetry");
	if (!mongoc_collection_delete_many(coll, &all, NULL, NULL, &err)) {
		fprintf(stderr, "telemetry_client: delete_many: %s\n", err.message);
		rc = 1;
	}
	mongoc_collection_destroy(coll);
	mongoc_client_destroy(client);
	return rc;
}

int
main(int argc, char **argv)
{
	void *(*fn)(void *) = NULL;
	long threads = -1;
	int rc;

	mongoc_init();
	snprintf(run_id, sizeof(run_id), "b%lx%x", (long)wall_ms(), (unsigned)getpid());
	if (argc == 3 && strcmp(argv[1], "reset") == 0) {
		rc = reset(argv[2]);
		mongoc_cleanup();
		return rc;
	}
	if (argc == 6 && strcmp(argv[1], "mongo") == 0) {
		target = argv[2];
		threads = arg_long(argv[3], 1, 256);
		nbatches = arg_long(argv[4], 1, 1000000);
		batch = arg_long(argv[5], 1, 100000);
		fn = run_mongo;
	} else if (argc == 7 && strcmp(argv[1], "http") == 0) {
		char host[64];
		const char *colon = strrchr(argv[2], ':');
		long port = colon != NULL ? arg_long(colon + 1, 1, 65535) : -1;
		snprintf(host, sizeof(host), "%.*s", colon ? (int)(colon - argv[2]) : 0, argv[2]);
		http_addr.sin_family = AF_INET;
		http_addr.sin_port = htons((uint16_t)port);
		if (port < 0 || inet_pton(AF_INET, host, &http_addr.sin_addr) != 1)
			threads = -1;
		else
			threads = arg_long(argv[4], 1, 256);
		api_key = argv[3];
		nbatches = arg_long(argv[5], 1, 1000000);
		batch = arg_long(argv[6], 1, 100000);
		fn = run_http;
	}
	if (fn == NULL || threads < 1 || nbatches < 1 || batch < 1) {
		fprintf(stderr,
		        "usage: telemetry_client mongo URI THREADS BATCHES BATCH\n"
		        "       telemetry_client http IP:PORT API_KEY THREADS BATCHES BATCH\n"
		        "       telemetry_client reset URI\n");
		return 64;
	}
	pthread_t *ths = calloc((size_t)threads, sizeof(*ths));
	if (ths == NULL)
		return 1;
	double t0 = now_s();
	for (long i = 0; i < threads; i++)
		pthread_create(&ths[i], NULL, fn, NULL);
	for (long i = 0; i < threads; i++)
		pthread_join(ths[i], NULL);
	double dt = now_s() - t0;
	printf("readings/s %.0f (batches %ld, seconds %.2f)\n", (double)(nbatches * batch) / dt,
	       nbatches, dt);
	free(ths);
	mongoc_cleanup();
	return atomic_load(&failed) > 0;
}
