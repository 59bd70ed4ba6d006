/*
 * bridgeport-cni: the CNI plugin executable. A relay, not a plugin of its own:
 * every verb but VERSION is sent to the bridgeport daemon over its unix socket
 * (POST /v1/cni) and the daemon's answer is printed as it comes, so that the
 * model, IPAM, datapath and state stay in the daemon (src/cni/service.ts), as
 * cilium-cni does with its agent.
 *
 * Why C: podman runs VERSION for every plugin on every command, and starting
 * Node costs 110-140 ms here; this answers VERSION in about a millisecond.
 *
 * What it does beyond relaying:
 *  - VERSION is answered here, without the daemon.
 *  - CNI_NETNS is opened here, in the runtime's mount namespace, and handed to
 *    the daemon as /proc/<pid>/fd/<n>: the daemon may live in another mount
 *    namespace where the runtime's netns file is an empty file (podman's
 *    private one, a Kubernetes agent's container). The fd stays open until
 *    the daemon has answered.
 *  - With the daemon down, DEL is queued on disk beside the socket
 *    (<dir>/cni-pending/del-*.json, the same body it would have sent) and
 *    succeeds; the daemon does it when it is back. Runtimes never retry a DEL.
 *
 * Exit status: 0 when the daemon answered 2xx, 1 otherwise; stdout is the
 * daemon's answer (a result or a CNI error object) or an error made here.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_SOCKET "/run/bridgeport/bridgeport.sock"
#define SUPPORTED "[\"0.4.0\",\"1.0.0\",\"1.1.0\"]"
#define MAX_INPUT (16 << 20)
/* A daemon that answers nothing for this long is taken as down. */
#define ANSWER_TIMEOUT_S 300

/* CNI error codes (SPEC.md "Error"). */
#define CNI_ERR_DECODE 6
#define CNI_ERR_INVALID_CONFIG 7
#define CNI_ERR_TRY_AGAIN 11
#define CNI_ERR_NOT_AVAILABLE 50
#define CNI_ERR_IO 5

struct buf {
	char *data;
	size_t len, cap;
};

static void buf_grow(struct buf *b, size_t more)
{
	if (b->len + more + 1 <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 4096;
	while (cap < b->len + more + 1)
		cap *= 2;
	char *p = realloc(b->data, cap);
	if (!p) {
		fputs("bridgeport-cni: out of memory\n", stderr);
		exit(1);
	}
	b->data = p;
	b->cap = cap;
}

static void buf_add(struct buf *b, const char *s, size_t n)
{
	buf_grow(b, n);
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = 0;
}

static void buf_str(struct buf *b, const char *s) { buf_add(b, s, strlen(s)); }

/* s as a JSON string, quotes included; bytes >= 0x80 pass as they are. */
static void buf_json(struct buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	buf_add(b, "\"", 1);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\') {
			char esc[2] = {'\\', (char)c};
			buf_add(b, esc, 2);
		} else if (c < 0x20) {
			char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
			buf_add(b, esc, 6);
		} else {
			buf_add(b, (const char *)&s[i], 1);
		}
	}
	buf_add(b, "\"", 1);
}

static void buf_field(struct buf *b, const char *key, const char *value)
{
	if (b->len > 1)
		buf_add(b, ",", 1);
	buf_json(b, key, strlen(key));
	buf_add(b, ":", 1);
	buf_json(b, value, strlen(value));
}

/* ---- a top-level string value of a JSON object, without a JSON library ---- */

static const char *skip_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

/* Past a JSON string starting at p (on its quote); NULL when unterminated. */
static const char *skip_string(const char *p, const char *end)
{
	for (p++; p < end; p++) {
		if (*p == '\\')
			p++;
		else if (*p == '"')
			return p + 1;
	}
	return NULL;
}

/* Past one JSON value of any kind; NULL when malformed. */
static const char *skip_value(const char *p, const char *end)
{
	p = skip_ws(p, end);
	if (p >= end)
		return NULL;
	if (*p == '"')
		return skip_string(p, end);
	if (*p == '{' || *p == '[') {
		int depth = 0;
		while (p < end) {
			if (*p == '"') {
				p = skip_string(p, end);
				if (!p)
					return NULL;
				continue;
			}
			if (*p == '{' || *p == '[')
				depth++;
			else if (*p == '}' || *p == ']') {
				if (--depth == 0)
					return p + 1;
			}
			p++;
		}
		return NULL;
	}
	while (p < end && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\n' && *p != '\t' && *p != '\r')
		p++;
	return p;
}

/*
 * The value of `key` in the top-level object when it is a string without
 * escapes (versions and socket paths are): 1 and a malloc'd copy in *out;
 * 0 when absent or not such a string; -1 when the input is not a JSON object.
 */
static int top_level_string(const char *json, size_t n, const char *key, char **out)
{
	const char *end = json + n;
	const char *p = skip_ws(json, end);
	*out = NULL;
	if (p >= end || *p != '{')
		return -1;
	p = skip_ws(p + 1, end);
	if (p < end && *p == '}')
		return 0;
	while (p < end) {
		if (*p != '"')
			return -1;
		const char *k = p + 1;
		const char *kend = skip_string(p, end);
		if (!kend)
			return -1;
		p = skip_ws(kend, end);
		if (p >= end || *p != ':')
			return -1;
		p = skip_ws(p + 1, end);
		const char *v = p;
		p = skip_value(p, end);
		if (!p)
			return -1;
		size_t klen = (size_t)(kend - 1 - k);
		if (klen == strlen(key) && !memcmp(k, key, klen) && *v == '"') {
			const char *vend = p - 1;
			if (!memchr(v + 1, '\\', (size_t)(vend - v - 1))) {
				*out = strndup(v + 1, (size_t)(vend - v - 1));
				/* A later duplicate would win in Go and JS; keep looking. */
			}
		}
		p = skip_ws(p, end);
		if (p < end && *p == ',') {
			p = skip_ws(p + 1, end);
			continue;
		}
		if (p < end && *p == '}')
			return *out ? 1 : 0;
		return -1;
	}
	return -1;
}

/* ---- output ---- */

static const char *version = "1.1.0";

static int fail(int code, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	struct buf out = {0};
	char num[16];
	snprintf(num, sizeof(num), "%d", code);
	buf_str(&out, "{\"cniVersion\":");
	buf_json(&out, version, strlen(version));
	buf_str(&out, ",\"code\":");
	buf_str(&out, num);
	buf_str(&out, ",\"msg\":");
	buf_json(&out, msg, strlen(msg));
	buf_str(&out, "}\n");
	fputs(out.data, stdout);
	return 1;
}

static int read_all(int fd, struct buf *b, size_t limit)
{
	for (;;) {
		buf_grow(b, 65536);
		ssize_t n = read(fd, b->data + b->len, 65536);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0)
			return 0;
		b->len += (size_t)n;
		b->data[b->len] = 0;
		if (b->len > limit) {
			errno = EFBIG;
			return -1;
		}
	}
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static const char *env(const char *name)
{
	const char *v = getenv(name);
	return v ? v : "";
}

/* DEL while the daemon is down: the request is kept for the daemon, written whole or not at all. */
static int queue_del(const char *socket_path, const struct buf *body)
{
	char dir[4096], tmp[4200], final[4200];
	const char *slash = strrchr(socket_path, '/');
	size_t dlen = slash ? (size_t)(slash - socket_path) : 0;
	if (dlen == 0 || dlen >= sizeof(dir) - 32)
		return fail(CNI_ERR_IO, "queue DEL: socket path %s has no folder", socket_path);
	snprintf(dir, sizeof(dir), "%.*s", (int)dlen, socket_path);
	mkdir(dir, 0755);
	strncat(dir, "/cni-pending", sizeof(dir) - strlen(dir) - 1);
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return fail(CNI_ERR_IO, "queue DEL in %s: %s", dir, strerror(errno));
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	snprintf(final, sizeof(final), "%s/del-%lld%09ld-%d.json", dir, (long long)ts.tv_sec, ts.tv_nsec, (int)getpid());
	snprintf(tmp, sizeof(tmp), "%s/.tmp-%d", dir, (int)getpid());
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return fail(CNI_ERR_IO, "queue DEL in %s: %s", dir, strerror(errno));
	if (write_all(fd, body->data, body->len) < 0 || fsync(fd) < 0 || close(fd) < 0 || rename(tmp, final) < 0) {
		int e = errno;
		unlink(tmp);
		return fail(CNI_ERR_IO, "queue DEL in %s: %s", dir, strerror(e));
	}
	fprintf(stderr, "bridgeport-cni: daemon not reachable at %s; DEL queued as %s\n", socket_path, final);
	return 0;
}

int main(void)
{
	const char *command = env("CNI_COMMAND");
	struct buf input = {0};
	if (read_all(0, &input, MAX_INPUT) < 0)
		return fail(CNI_ERR_IO, "read network configuration from stdin: %s", strerror(errno));
	if (!input.data)
		buf_add(&input, "", 0);

	char *v = NULL;
	int parsed = top_level_string(input.data, input.len, "cniVersion", &v);
	if (parsed == 1)
		version = v;

	if (!strcmp(command, "VERSION")) {
		if (parsed < 0)
			return fail(CNI_ERR_DECODE, "VERSION: stdin is not a JSON object");
		struct buf out = {0};
		buf_str(&out, "{\"cniVersion\":");
		buf_json(&out, version, strlen(version));
		buf_str(&out, ",\"supportedVersions\":" SUPPORTED "}\n");
		fputs(out.data, stdout);
		return 0;
	}
	if (!*command)
		return fail(4, "CNI_COMMAND is not set (ADD, DEL, CHECK, VERSION, STATUS or GC)");
	if (parsed < 0)
		return fail(CNI_ERR_DECODE, "%s: the network configuration on stdin is not a JSON object", command);

	char *socket_path = NULL;
	if (top_level_string(input.data, input.len, "socket", &socket_path) != 1)
		socket_path = DEFAULT_SOCKET;
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	if (strlen(socket_path) >= sizeof(addr.sun_path))
		return fail(CNI_ERR_INVALID_CONFIG, "socket path %s is too long", socket_path);
	strcpy(addr.sun_path, socket_path);

	/* The sandbox, opened here for the daemon (see the top). */
	char fdpath[64] = "", netns_error[256] = "";
	const char *netns = env("CNI_NETNS");
	if (*netns && (!strcmp(command, "ADD") || !strcmp(command, "CHECK") || !strcmp(command, "DEL"))) {
		int nsfd = open(netns, O_RDONLY | O_CLOEXEC);
		if (nsfd >= 0)
			snprintf(fdpath, sizeof(fdpath), "/proc/%d/fd/%d", (int)getpid(), nsfd);
		else
			snprintf(netns_error, sizeof(netns_error), "%s", strerror(errno));
	}

	struct buf body = {0};
	buf_str(&body, "{");
	buf_field(&body, "command", command);
	buf_field(&body, "containerId", env("CNI_CONTAINERID"));
	buf_field(&body, "netns", netns);
	buf_field(&body, "netnsFd", fdpath);
	buf_field(&body, "netnsError", netns_error);
	buf_field(&body, "ifname", env("CNI_IFNAME"));
	buf_field(&body, "args", env("CNI_ARGS"));
	buf_field(&body, "path", env("CNI_PATH"));
	buf_str(&body, ",\"config\":");
	buf_json(&body, input.data, input.len);
	buf_str(&body, "}");

	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return fail(CNI_ERR_IO, "socket: %s", strerror(errno));
	if (connect(s, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		int e = errno;
		if (!strcmp(command, "DEL"))
			return queue_del(socket_path, &body);
		return fail(!strcmp(command, "STATUS") ? CNI_ERR_NOT_AVAILABLE : CNI_ERR_TRY_AGAIN,
			    "bridgeport daemon not reachable at %s: %s (is it running? the network config's \"socket\" names it)",
			    socket_path, strerror(e));
	}
	struct timeval tv = {.tv_sec = ANSWER_TIMEOUT_S};
	setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));

	char head[256];
	int hlen = snprintf(head, sizeof(head),
			    "POST /v1/cni HTTP/1.1\r\nHost: bridgeport\r\nContent-Type: application/json\r\n"
			    "Content-Length: %zu\r\nConnection: close\r\n\r\n",
			    body.len);
	if (write_all(s, head, (size_t)hlen) < 0 || write_all(s, body.data, body.len) < 0)
		return fail(CNI_ERR_TRY_AGAIN, "send to bridgeport daemon at %s: %s", socket_path, strerror(errno));

	struct buf answer = {0};
	if (read_all(s, &answer, MAX_INPUT) < 0)
		return fail(CNI_ERR_TRY_AGAIN, "read answer of bridgeport daemon at %s: %s", socket_path, strerror(errno));
	close(s);
	int status = 0;
	char *text = answer.data ? strstr(answer.data, "\r\n\r\n") : NULL;
	if (!text || sscanf(answer.data, "HTTP/1.%*d %d", &status) != 1)
		return fail(CNI_ERR_IO, "bridgeport daemon at %s gave no HTTP answer", socket_path);
	text += 4;
	fputs(text, stdout);
	if (*text && text[strlen(text) - 1] != '\n')
		fputc('\n', stdout);
	if (fflush(stdout) != 0)
		return 1;
	return status >= 200 && status < 300 ? 0 : 1;
}
