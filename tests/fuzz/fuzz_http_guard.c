/*
 * The HTTP framing guard on a connection's input buffer, as evhttp's
 * bufferevent sees it: bytes arrive in chunks of any size, the guard judges
 * and rewrites each header block, body and chunked body as they come, and
 * evhttp consumes complete lines between chunks.
 *
 * Input: byte 0 chooses the limits, byte 1 seeds the chunk and consumption
 * sizes; the rest is what the client sends. The buffer is then checked: the
 * guard's refusal header, wherever it is, must parse.
 */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <sys/socket.h>

#include "frontends/http/http_guard.h"
#define FUZZ_OWN_INITIALIZE
#include "fuzz/fuzz_util.h"

static struct event_base *base;
static int sockets[2] = {-1, -1};
static http_guard guard;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  fuzz_quiet_logs();
  base = event_base_new();
  if (!base || socketpair(AF_UNIX, SOCK_STREAM, 0, sockets) != 0) abort();
  return 0;
}

static uint32_t next_random(uint32_t *state) {
  *state = *state * 1103515245u + 12345u;
  return *state >> 16;
}

/* Every refusal the guard wrote must be one the request callback reads. */
static void check_refusals(struct evbuffer *buf) {
  const size_t len = evbuffer_get_length(buf);
  if (len == 0) return;
  const char *text = (const char *)evbuffer_pullup(buf, -1);
  char *copy = fuzz_strndup((const uint8_t *)text, len);
  static const char name[] = HTTP_GUARD_HEADER ": ";
  for (const char *p = copy; (p = strstr(p, name)) != NULL; p++) {
    /* A client's own header of that name is dropped, so any left is ours,
     * unless it sits inside a body the guard passed through unread. */
    if (p != copy && p[-1] != '\n') continue;
    const char *value = p + sizeof(name) - 1;
    const char *eol = strstr(value, "\r\n");
    if (!eol) continue;
    char *v = fuzz_strndup((const uint8_t *)value, (size_t)(eol - value));
    int status;
    bool close;
    const char *message;
    if (http_guard_refusal(v, &status, &close, &message)) FUZZ_CHECK(status >= 400 && status <= 599);
    free(v);
  }
  free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) return 0;
  static const uint64_t bodies[] = {0, 10, 100, 1 << 20, UINT64_MAX};
  static const size_t header_bytes[] = {64, 200, 65536};
  static const int headers[] = {2, 4, 100};
  guard.limits = (http_guard_limits){
      .body = bodies[data[0] % 5],
      .header_bytes = header_bytes[data[0] / 5 % 3],
      .headers = headers[data[0] / 15 % 3],
  };
  uint32_t rng = data[1];
  data += 2;
  size -= 2;

  struct bufferevent *bev = http_guard_bufferevent(base, &guard);
  FUZZ_CHECK(bev != NULL);
  const int fd = dup(sockets[0]);
  FUZZ_CHECK(fd >= 0);
  bufferevent_setfd(bev, fd);
  struct evbuffer *in = bufferevent_get_input(bev);
  for (size_t at = 0; at < size;) {
    size_t n = 1 + next_random(&rng) % 64;
    if (n > size - at) n = size - at;
    FUZZ_CHECK(evbuffer_add(in, data + at, n) == 0);
    at += n;
    /* evhttp reads whole lines (and bodies the guard passed), never a line
     * still coming: consume a prefix that ends at a line's end. */
    if (next_random(&rng) % 4 == 0) {
      const size_t len = evbuffer_get_length(in);
      const char *text = (const char *)evbuffer_pullup(in, -1);
      size_t complete = len;
      while (complete > 0 && text[complete - 1] != '\n') complete--;
      if (complete) evbuffer_drain(in, 1 + next_random(&rng) % complete);
    }
  }
  check_refusals(in);
  bufferevent_free(bev);
  /* A bufferevent is finalized (and its socket closed) on the loop. */
  event_base_loop(base, EVLOOP_NONBLOCK);
  return 0;
}
