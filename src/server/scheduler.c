#include "server/scheduler.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/bytes_tensor.h"
#include "base/clock.h"
#include "base/error.h"
#include "base/log.h"
#include "base/mem.h"
#include "server/batcher.h"
#include "server/classification.h"

/* Where instances gather batches and receive outputs (see staging_alloc). */
#define STAGING_MEMORY INFERD_MEMORY_CPU_PINNED

typedef struct request_queue {
  inferd_request *head, *tail;
} request_queue;

typedef struct instance {
  struct scheduler *s;
  int index;
  pthread_t thread;
  bool started;
  inferd_plan *plan; /* compiled for this instance's device (shared with the others there) */
  inferd_device device;
  inferd_context *ctx;
  inferd_tensor *in, *out; /* staging tensors, max_batch items each */
  size_t *in_cap;          /* bytes allocated for each BYTES input, which grows as needed */
  /* A run in place (see runs_in_place) runs on these: the staging tensors
   * with that request's GPU tensors put in place of the staging. run_out
   * is the output array of the last run. */
  inferd_tensor *in_place_in, *in_place_out;
  inferd_tensor *run_out;
  /* A batch of requests whose inputs are all in CUDA regions of this GPU is
   * gathered there (see gathers_on_device) into dev_in (allocated on first
   * use, max_batch items each), dev_run_in being the run's tensors over it;
   * outputs asked for in such regions are scattered from the staging by the
   * GPU too (`scattered` says so for the batch being answered). `copies`
   * holds either list, room for every request's every tensor. */
  void **dev_in;
  inferd_tensor *dev_run_in;
  inferd_copy *copies;
  bool scattered;
  inferd_request **batch;  /* requests of the batch being run */
  int *sizes;              /* batch sizes of queued requests, for batcher_pick */
  bool busy;               /* running a batch, on its thread or a caller's (under lock) */
  bool ran;                /* its thread has run since it last let go of its workers */
  uint64_t idle_since;     /* when it last found no work after running (0: it has work) */
} instance;

/* An instance thread without work for this long lets go of what the backend
 * keeps per thread (inferd_context_idle): another model's runs need the
 * CPUs more than this instance needs its OpenMP workers warm. */
enum { IDLE_RELEASE_NS = 100 * 1000 * 1000 };

struct scheduler {
  scheduler_config cfg;
  const scheduler_output_info *output_info;
  model_stats *stats;
  int64_t version;
  bool dynamic; /* the plan has a batch dimension */
  int n_in, n_out;
  inferd_tensor_info *in_info, *out_info;
  size_t *in_item_bytes, *out_item_bytes; /* bytes of one batch item */
  pthread_mutex_t lock;
  pthread_cond_t work;
  request_queue *queues; /* [priority_levels], index 0 = level 1 */
  int queued, running;
  bool stopping;
  bool flushing; /* no request can join a batch any more: queued ones run at once */
  instance *instances;
  /* preserve_ordering with several instances: answers wait in `held`
   * (sorted by seq) until every earlier request is answered. */
  bool ordered;
  uint64_t next_seq, next_answer;
  pthread_mutex_t order_lock;
  inferd_request *held;
};

/* Elements of one batch item (of the whole tensor when not batching). */
static size_t item_count(const inferd_tensor_info *info, bool dynamic) {
  size_t n = 1;
  for (int d = dynamic ? 1 : 0; d < info->rank; d++) n *= (size_t)info->dims[d];
  return n;
}

/* Bytes of one item; 0 for BYTES, whose items vary. */
static size_t item_bytes(const inferd_tensor_info *info, bool dynamic) {
  return inferd_datatype_size(info->datatype) * item_count(info, dynamic);
}

static void queue_push(request_queue *q, inferd_request *r) {
  r->next = NULL;
  if (q->tail)
    q->tail->next = r;
  else
    q->head = r;
  q->tail = r;
}

static inferd_request *queue_pop(request_queue *q) {
  inferd_request *r = q->head;
  if (r) {
    q->head = r->next;
    if (!q->head) q->tail = NULL;
    r->next = NULL;
  }
  return r;
}

/* The oldest request of the highest non-empty priority level. */
static inferd_request *first_request(const scheduler *s) {
  for (int l = 0; l < s->cfg.priority_levels; l++)
    if (s->queues[l].head) return s->queues[l].head;
  return NULL;
}

/* Removes requests whose queue deadline passed (with timeout_action REJECT)
 * into *expired, to be answered outside the lock. Returns the earliest
 * deadline of those left (0: none), for the batcher's wait. */
static bool is_cancelled(const inferd_request *r) {
  return atomic_load_explicit(&r->cancel_asked, memory_order_relaxed) ||
         (r->cancel && atomic_load_explicit(r->cancel, memory_order_relaxed));
}

/* What a cancelled request is answered. */
static inferd_error *cancelled_error(const inferd_request *r) {
  return err_new(INFERD_ERROR_CANCELLED, "request of model '%s' not run: %s", r->model_name,
                 atomic_load(&r->cancel_asked) ? "cancelled by its caller" : "its client has gone");
}

void scheduler_flush(scheduler *s) {
  pthread_mutex_lock(&s->lock);
  s->flushing = true;
  pthread_cond_broadcast(&s->work);
  pthread_mutex_unlock(&s->lock);
}

void scheduler_wake(scheduler *s) {
  pthread_mutex_lock(&s->lock);
  pthread_cond_broadcast(&s->work);
  pthread_mutex_unlock(&s->lock);
}

static uint64_t collect_expired(scheduler *s, uint64_t now, inferd_request **expired) {
  uint64_t earliest = 0;
  for (int l = 0; l < s->cfg.priority_levels; l++) {
    request_queue *q = &s->queues[l];
    inferd_request *prev = NULL, *r = q->head;
    while (r) {
      inferd_request *next = r->next;
      if (is_cancelled(r) || (!s->cfg.delay_on_timeout && r->deadline_ns && now >= r->deadline_ns)) {
        if (prev)
          prev->next = next;
        else
          q->head = next;
        if (q->tail == r) q->tail = prev;
        r->next = *expired;
        *expired = r;
        s->queued--;
      } else {
        if (!s->cfg.delay_on_timeout && r->deadline_ns && (!earliest || r->deadline_ns < earliest))
          earliest = r->deadline_ns;
        prev = r;
      }
      r = next;
    }
  }
  return earliest;
}

/* A request with tensors in GPU memory batches with others on a GPU
 * instance, whose gather and scatter copy them (see run_batch); a CPU
 * instance cannot read them, so such a request runs alone there and fails
 * with the engine's message naming the tensor, leaving the other requests
 * alone. */
static bool runs_alone(const instance *inst, const inferd_request *r) {
  return r->gpu_tensors && inst->device.kind != INFERD_DEVICE_CUDA;
}

/* Lists the batch sizes of the queued requests in take order into
 * inst->sizes, as far as they can fill one batch; returns the count. */
static int queued_sizes(const scheduler *s, instance *inst) {
  int n = 0, items = 0;
  for (int l = 0; l < s->cfg.priority_levels; l++)
    for (const inferd_request *r = s->queues[l].head; r; r = r->next) {
      if (runs_alone(inst, r)) return n; /* the batch ends before it */
      inst->sizes[n++] = r->batch;
      items += r->batch;
      if (items > s->cfg.max_batch_size || n > s->cfg.max_batch_size) return n;
    }
  return n;
}

/* Moves the first n queued requests (take order) into inst->batch. */
static void pop_requests(scheduler *s, instance *inst, int n) {
  int taken = 0;
  for (int l = 0; l < s->cfg.priority_levels && taken < n; l++)
    while (taken < n && s->queues[l].head) inst->batch[taken++] = queue_pop(&s->queues[l]);
}

/* Blocks until a batch is ready; returns its request count (0: stop, or
 * expired requests to answer first). */
static int take_batch(instance *inst, inferd_request **expired) {
  scheduler *s = inst->s;
  pthread_mutex_lock(&s->lock);
  for (;;) {
    if (inst->busy) {
      /* A caller is running a request on this instance's context. */
      pthread_cond_wait(&s->work, &s->lock);
      continue;
    }
    uint64_t now = clock_now_ns();
    uint64_t next_deadline = collect_expired(s, now, expired);
    if (*expired) break; /* answer them first, outside the lock */
    inferd_request *first = first_request(s);
    if (!first) {
      if (s->stopping) break;
      if (!inst->ran) {
        pthread_cond_wait(&s->work, &s->lock);
        continue;
      }
      /* Counted from when the work ran out, so wakeups that bring this
       * instance nothing do not put the release off. */
      if (!inst->idle_since) inst->idle_since = now;
      const uint64_t release = clock_add_sat(inst->idle_since, IDLE_RELEASE_NS);
      if (now < release) {
        struct timespec ts = clock_deadline_after(release - now);
        pthread_cond_timedwait(&s->work, &s->lock, &ts);
        continue;
      }
      /* Idle: let go outside the lock, lending the context to no caller
       * meanwhile. */
      inst->busy = true;
      inst->ran = false;
      inst->idle_since = 0;
      pthread_mutex_unlock(&s->lock);
      inferd_context_idle(inst->ctx);
      pthread_mutex_lock(&s->lock);
      inst->busy = false;
      continue;
    }
    int n = 1;
    if (!runs_alone(inst, first) && s->cfg.max_batch_size > 0 && s->cfg.dynamic_batching && s->dynamic) {
      const uint64_t delay_ns = clock_us_to_ns(s->cfg.max_queue_delay_us);
      bool due = s->stopping || s->flushing || now >= clock_add_sat(first->enqueue_ns, delay_ns);
      batch_rules rules = {.max_batch_size = s->cfg.max_batch_size,
                           .preferred = s->cfg.preferred,
                           .n_preferred = s->cfg.n_preferred};
      n = batcher_pick(&rules, inst->sizes, queued_sizes(s, inst), due);
      if (!n) {
        /* Wait for more requests, for the oldest one's delay to end, or for
         * the first queue deadline, whichever comes first. */
        uint64_t wake = clock_add_sat(first->enqueue_ns, delay_ns);
        if (next_deadline && next_deadline < wake) wake = next_deadline;
        struct timespec ts = clock_deadline_after(wake > now ? wake - now : 0);
        pthread_cond_timedwait(&s->work, &s->lock, &ts);
        continue;
      }
    }
    pop_requests(s, inst, n);
    s->queued -= n;
    s->running += n;
    inst->busy = true;
    inst->ran = true;
    inst->idle_since = 0;
    /* More work left: wake another idle instance for it. */
    if (first_request(s)) pthread_cond_signal(&s->work);
    pthread_mutex_unlock(&s->lock);
    return n;
  }
  pthread_mutex_unlock(&s->lock);
  return 0;
}

static int find_input(const inferd_request *r, const char *name) {
  for (int i = 0; i < r->n_inputs; i++)
    if (strcmp(r->inputs[i].name, name) == 0) return i;
  return -1;
}

/* Whether the instance's GPU puts `bytes` bytes of an output into the
 * CUDA region `want` names (see scatter_outputs): a region of its own GPU,
 * the tensor itself, and room for it (else output_to_shm's check answers). */
static bool scattered_by_gpu(const instance *inst, const requested_output *want, size_t bytes) {
  return inst->device.kind == INFERD_DEVICE_CUDA && want->region && shm_region_kind(want->region) == INFERD_SHM_CUDA &&
         shm_region_device(want->region) == inst->device.ordinal && want->classification_count == 0 &&
         bytes <= want->shm_byte_size;
}

/* Puts `bytes` bytes of output o into the shared memory `want` names:
 * copied from src (the staging), by the plan's device when the region is
 * GPU memory, or already there when `in_place` (the engine wrote a GPU
 * output into the region itself). */
static inferd_error *output_to_shm(const instance *inst, const requested_output *want, response_output *o,
                                   const void *src, size_t bytes, bool in_place) {
  if (bytes > want->shm_byte_size)
    return err_new(INFERD_ERROR_INVALID_ARG,
                   "output '%s' has %zu bytes but its span of shared memory region '%s' has %llu "
                   "(shared_memory_byte_size)",
                   o->name, bytes, shm_region_name(want->region), (unsigned long long)want->shm_byte_size);
  if (!in_place && bytes && shm_region_kind(want->region) == INFERD_SHM_CUDA) {
    inferd_error *e =
        inferd_plan_memory_copy(inst->plan, want->shm_data, INFERD_MEMORY_GPU, src, STAGING_MEMORY, bytes);
    if (e)
      return err_wrap(e, "output '%s' into CUDA shared memory region '%s'", o->name, shm_region_name(want->region));
  } else if (!in_place && bytes) {
    memcpy(want->shm_data, src, bytes);
  }
  o->data = NULL;
  o->byte_size = bytes;
  o->shm_region = mem_strdup(shm_region_name(want->region));
  o->shm_offset = want->shm_offset;
  return NULL;
}

/* Room for output o's `bytes` bytes in the response: the buffer of the
 * request's output allocator when it gives one (host memory, or GPU memory
 * of the instance's GPU), else one of the server's. */
static inferd_error *output_room(const instance *inst, const inferd_request *r, response_output *o, size_t bytes) {
  o->byte_size = bytes;
  o->memory = INFERD_MEMORY_CPU;
  if (r->output_alloc) {
    void *buffer = NULL, *buffer_userp = NULL;
    inferd_memory_kind kind = INFERD_MEMORY_CPU;
    int memory_id = 0;
    inferd_error *e = r->output_alloc(o->name, bytes, r->output_userp, &buffer, &kind, &memory_id, &buffer_userp);
    if (e) return err_wrap(e, "the output allocator for output '%s'", o->name);
    if (buffer) {
      o->data = buffer;
      o->caller_buffer = true;
      o->memory = kind;
      o->memory_id = memory_id;
      o->buffer_userp = buffer_userp;
      const bool on_this_gpu = inst->device.kind == INFERD_DEVICE_CUDA && memory_id == inst->device.ordinal;
      if (kind == INFERD_MEMORY_GPU && !on_this_gpu)
        return err_new(INFERD_ERROR_INVALID_ARG,
                       "the output allocator gave output '%s' memory of GPU %d; the instance answering runs on %s %d",
                       o->name, memory_id, inst->device.kind == INFERD_DEVICE_CUDA ? "GPU" : "the CPU",
                       inst->device.ordinal);
      if (kind != INFERD_MEMORY_GPU && kind != INFERD_MEMORY_CPU && kind != INFERD_MEMORY_CPU_PINNED)
        return err_new(INFERD_ERROR_INVALID_ARG, "the output allocator gave output '%s' memory of unknown kind %d",
                       o->name, (int)kind);
      return NULL;
    }
  }
  o->data = mem_try_alloc(bytes ? bytes : 1, 1);
  return o->data ? NULL : err_new(INFERD_ERROR_NO_MEMORY, "allocating output '%s'", o->name);
}

/* Writes `bytes` host bytes from src into output o's room. */
static inferd_error *output_write(const instance *inst, response_output *o, const void *src, size_t bytes) {
  if (!bytes) return NULL;
  if (o->memory != INFERD_MEMORY_GPU) {
    memcpy(o->data, src, bytes);
    return NULL;
  }
  inferd_error *e = inferd_plan_memory_copy(inst->plan, o->data, INFERD_MEMORY_GPU, src, STAGING_MEMORY, bytes);
  return e ? err_wrap(e, "output '%s' into the output allocator's GPU memory", o->name) : NULL;
}

/* Fills the response's outputs for request r, items [offset, offset+r->batch)
 * of the batch's staging outputs. */
static inferd_error *split_outputs(instance *inst, inferd_request *r, int offset, inferd_response **out) {
  scheduler *s = inst->s;
  int wanted = r->n_outputs ? r->n_outputs : s->n_out;
  inferd_response *resp = response_new(r, s->version, wanted);
  for (int w = 0; w < wanted; w++) {
    int k = w;
    int classes = 0;
    if (r->n_outputs) {
      for (k = 0; k < s->n_out && strcmp(s->out_info[k].name, r->outputs[w].name) != 0; k++) {
      }
      classes = r->outputs[w].classification_count;
    }
    const inferd_tensor *t = &inst->run_out[k];
    const requested_output *want_shm = r->n_outputs && r->outputs[w].region ? &r->outputs[w] : NULL;
    response_output *o = &resp->outputs[w];
    o->name = mem_strdup(s->out_info[k].name);
    o->rank = t->rank;
    memcpy(o->shape, t->dims, sizeof(o->shape));
    if (s->dynamic) o->shape[0] = r->batch;
    size_t item = s->out_item_bytes[k];
    const char *src = (const char *)t->data + (size_t)offset * item;
    size_t bytes = item * (size_t)r->batch;
    if (t->datatype == INFERD_TYPE_BYTES) {
      /* Items vary in size: find this request's elements. */
      const size_t per_item = item_count(&s->out_info[k], s->dynamic);
      const size_t skip = bytes_tensor_span(t->data, t->byte_size, per_item * (size_t)offset);
      bytes = skip == SIZE_MAX ? SIZE_MAX
                               : bytes_tensor_span((const char *)t->data + skip, t->byte_size - skip,
                                                   per_item * (size_t)r->batch);
      if (bytes == SIZE_MAX) {
        inferd_error *e = err_new(INFERD_ERROR_INTERNAL, "output '%s': BYTES data does not match its shape", o->name);
        inferd_response_delete(resp); /* o->name belongs to it */
        return e;
      }
      src = (const char *)t->data + skip;
    }
    const scheduler_output_info *oi = &s->output_info[k];
    if (oi->reshaped) {
      int lead = s->dynamic ? 1 : 0;
      o->rank = lead + oi->rank;
      for (int d = 0; d < oi->rank; d++) o->shape[lead + d] = oi->dims[d];
      if (lead) o->shape[0] = r->batch;
    }
    if (!classes && want_shm) {
      o->datatype = t->datatype;
      const bool in_place =
          t->memory == INFERD_MEMORY_GPU || (inst->scattered && scattered_by_gpu(inst, want_shm, bytes));
      inferd_error *e = output_to_shm(inst, want_shm, o, src, bytes, in_place);
      if (e) {
        inferd_response_delete(resp);
        return e;
      }
      continue;
    }
    if (!classes) {
      o->datatype = t->datatype;
      inferd_error *e = output_room(inst, r, o, bytes);
      if (!e) e = output_write(inst, o, src, bytes);
      if (e) {
        inferd_response_delete(resp); /* o->name and its room belong to it */
        return e;
      }
      continue;
    }
    if (t->datatype != INFERD_TYPE_FP32) {
      inferd_error *e = err_new(INFERD_ERROR_UNSUPPORTED, "classification of output '%s' needs FP32 scores, it is %s",
                                o->name, inferd_datatype_name(t->datatype));
      inferd_response_delete(resp); /* o->name belongs to it */
      return e;
    }
    int64_t per_item = (int64_t)(item / sizeof(float));
    int items = s->dynamic ? r->batch : 1;
    int k_eff = classes < per_item ? classes : (int)per_item;
    size_t total = 0;
    for (int b = 0; b < items; b++)
      total += classification_write((const float *)src + b * per_item, per_item, k_eff, s->output_info[k].labels,
                                    s->output_info[k].n_labels, NULL);
    /* The text goes straight into the response's room when that is host
     * memory, else through a scratch copy (shared memory, which may be a
     * GPU's, or the allocator's GPU memory). */
    inferd_error *e = want_shm ? NULL : output_room(inst, r, o, total);
    const bool direct = !e && !want_shm && o->memory != INFERD_MEMORY_GPU;
    char *dst = direct ? o->data : e ? NULL : mem_try_alloc(total ? total : 1, 1);
    if (!e && !dst) e = err_new(INFERD_ERROR_NO_MEMORY, "allocating the classification of output '%s'", o->name);
    size_t written = 0;
    for (int b = 0; b < items && !e; b++)
      written += classification_write((const float *)src + b * per_item, per_item, k_eff, s->output_info[k].labels,
                                      s->output_info[k].n_labels, dst + written);
    if (!e && want_shm) e = output_to_shm(inst, want_shm, o, dst, written, false);
    else if (!e && !direct) e = output_write(inst, o, dst, written);
    if (!direct) free(dst);
    if (e) {
      inferd_response_delete(resp);
      return e;
    }
    o->byte_size = written;
    o->datatype = INFERD_TYPE_BYTES;
    if (s->dynamic) {
      o->rank = 2;
      o->shape[1] = k_eff;
    } else {
      o->rank = 1;
      o->shape[0] = k_eff;
    }
  }
  *out = resp;
  return NULL;
}

/* Delivers the answer of r, in admission order when the model asks for it.
 * Callbacks run under order_lock then; they only hand responses over, as the
 * API requires of them. */
static void answer(scheduler *s, inferd_request *r, inferd_response *resp) {
  if (!s->ordered) {
    request_complete(r, resp);
    return;
  }
  pthread_mutex_lock(&s->order_lock);
  r->answer = resp;
  inferd_request **link = &s->held;
  while (*link && (*link)->seq < r->seq) link = &(*link)->next;
  r->next = *link;
  *link = r;
  while (s->held && s->held->seq == s->next_answer) {
    inferd_request *first = s->held;
    s->held = first->next;
    s->next_answer++;
    request_complete(first, first->answer);
  }
  pthread_mutex_unlock(&s->order_lock);
}

/* Whether every GPU tensor of r is on GPU `device`. */
static bool gpu_tensors_on(const inferd_request *r, int device) {
  for (int i = 0; i < r->n_inputs; i++)
    if (r->inputs[i].memory == INFERD_MEMORY_GPU && r->inputs[i].memory_id != device) return false;
  for (int w = 0; w < r->n_outputs; w++)
    if (r->outputs[w].region && shm_region_kind(r->outputs[w].region) == INFERD_SHM_CUDA &&
        shm_region_device(r->outputs[w].region) != device)
      return false;
  return true;
}

/* Whether the run of batch [0, n) hands its one request's GPU tensors to
 * the engine where they are instead of copying them through the staging:
 * a request that runs alone on a CPU instance (where the engine refuses
 * them with a message naming the tensor), or a batch of one request whose
 * GPU tensors are on the instance's GPU, which then costs no copies. A
 * batch of several is gathered into the staging and scattered from it by
 * the plan's device (inferd_plan_memory_copy), as the client's bytes must
 * sit side by side along the batch dimension. */
static bool runs_in_place(const instance *inst, int n) {
  const inferd_request *r = inst->batch[0];
  return n == 1 && r->gpu_tensors && (runs_alone(inst, r) || gpu_tensors_on(r, inst->device.ordinal));
}

/* The tensors of a run in place (see runs_in_place): the staging, gathered
 * as for any batch, except that r's GPU inputs and its outputs asked for in
 * CUDA regions are handed to the engine where they are. */
static void in_place_tensors(instance *inst, const inferd_request *r) {
  scheduler *s = inst->s;
  for (int k = 0; k < s->n_in; k++) {
    inst->in_place_in[k] = inst->in[k];
    const int at = find_input(r, s->in_info[k].name);
    if (at < 0 || r->inputs[at].memory != INFERD_MEMORY_GPU) continue;
    inferd_tensor *t = &inst->in_place_in[k];
    t->data = (void *)r->inputs[at].data;
    t->byte_size = r->inputs[at].byte_size;
    t->memory = INFERD_MEMORY_GPU;
    t->memory_id = r->inputs[at].memory_id;
  }
  for (int k = 0; k < s->n_out; k++) {
    inst->in_place_out[k] = inst->out[k];
    for (int w = 0; w < r->n_outputs; w++) {
      const requested_output *o = &r->outputs[w];
      if (!o->region || shm_region_kind(o->region) != INFERD_SHM_CUDA || strcmp(o->name, s->out_info[k].name) != 0)
        continue;
      inferd_tensor *t = &inst->in_place_out[k];
      t->data = o->shm_data;
      t->byte_size = (size_t)o->shm_byte_size;
      t->memory = INFERD_MEMORY_GPU;
      t->memory_id = shm_region_device(o->region);
    }
  }
}

/* Whether batch [0, n) of several requests is gathered on the instance's
 * GPU: every model input of every request is in a CUDA region of that GPU
 * (no defaults, no BYTES). Their bytes then never cross to the host: one
 * launch copies them side by side into dev_in. */
static bool gathers_on_device(const instance *inst, int n) {
  const scheduler *s = inst->s;
  if (n < 2 || !s->dynamic || inst->device.kind != INFERD_DEVICE_CUDA) return false;
  for (int k = 0; k < s->n_in; k++)
    if (s->in_info[k].datatype == INFERD_TYPE_BYTES) return false;
  for (int i = 0; i < n; i++) {
    const inferd_request *r = inst->batch[i];
    if (!r->gpu_tensors) return false;
    for (int k = 0; k < s->n_in; k++) {
      const int at = find_input(r, s->in_info[k].name);
      if (at < 0 || r->inputs[at].memory != INFERD_MEMORY_GPU || r->inputs[at].memory_id != inst->device.ordinal)
        return false;
    }
  }
  return true;
}

/* Queues the gather of gathers_on_device on the context's stream and points
 * dev_run_in at it. */
static inferd_error *gather_on_device(instance *inst, int n, int total) {
  scheduler *s = inst->s;
  const int items = s->cfg.max_batch_size > 0 ? s->cfg.max_batch_size : 1;
  int c = 0;
  for (int k = 0; k < s->n_in; k++) {
    if (!inst->dev_in[k]) {
      const size_t bytes = s->in_item_bytes[k] * (size_t)items;
      inferd_error *e = inferd_plan_memory_alloc(inst->plan, INFERD_MEMORY_GPU, bytes, &inst->dev_in[k]);
      if (e) return err_wrap(e, "allocating %zu bytes of GPU staging for input '%s'", bytes, s->in_info[k].name);
    }
    size_t off = 0;
    for (int i = 0; i < n; i++) {
      const request_input *in = &inst->batch[i]->inputs[find_input(inst->batch[i], s->in_info[k].name)];
      inst->copies[c++] = (inferd_copy){.dst = (char *)inst->dev_in[k] + off, .src = in->data, .size = in->byte_size};
      off += in->byte_size;
    }
    inferd_tensor *t = &inst->dev_run_in[k];
    *t = inst->in[k];
    t->data = inst->dev_in[k];
    t->byte_size = s->in_item_bytes[k] * (size_t)total;
    t->dims[0] = total;
    t->memory = INFERD_MEMORY_GPU;
    t->memory_id = inst->device.ordinal;
  }
  return inferd_context_copy_async(inst->ctx, inst->copies, c);
}

/* Queues, after the run, the copies of the outputs that go to CUDA regions
 * of the instance's GPU (scattered_by_gpu) from the staging, so that they
 * are there when the run is waited for. */
static inferd_error *scatter_outputs(instance *inst, int n) {
  scheduler *s = inst->s;
  int c = 0, offset = 0;
  for (int i = 0; i < n; offset += inst->batch[i]->batch, i++) {
    const inferd_request *r = inst->batch[i];
    for (int w = 0; w < r->n_outputs; w++) {
      int k = 0;
      while (k < s->n_out && strcmp(s->out_info[k].name, r->outputs[w].name) != 0) k++;
      if (k == s->n_out || s->out_info[k].datatype == INFERD_TYPE_BYTES) continue;
      const size_t item = s->out_item_bytes[k], bytes = item * (size_t)r->batch;
      if (!scattered_by_gpu(inst, &r->outputs[w], bytes)) continue;
      inst->copies[c++] = (inferd_copy){.dst = r->outputs[w].shm_data,
                                        .src = (const char *)inst->run_out[k].data + (size_t)offset * item,
                                        .size = bytes};
    }
  }
  return inferd_context_copy_async(inst->ctx, inst->copies, c);
}

static void run_batch(instance *inst, int n) {
  scheduler *s = inst->s;
  uint64_t t0 = clock_now_ns();
  int total = 0;
  for (int i = 0; i < n; i++) {
    stat_add(&s->stats->queue, t0 - inst->batch[i]->enqueue_ns);
    total += inst->batch[i]->batch;
  }
  /* Gather: each model input is the requests' tensors one after another
   * along the batch dimension. */
  const bool in_place = runs_in_place(inst, n);
  const bool on_device = !in_place && gathers_on_device(inst, n);
  inferd_error *staging_error = on_device ? gather_on_device(inst, n, total) : NULL;
  for (int k = 0; k < s->n_in && !staging_error && !on_device; k++) {
    inferd_tensor *t = &inst->in[k];
    size_t item = s->in_item_bytes[k];
    size_t off = 0;
    if (t->datatype == INFERD_TYPE_BYTES) {
      /* Serialized elements concatenate as they are; only the room varies. */
      size_t need = 0;
      for (int i = 0; i < n; i++) {
        const int at = find_input(inst->batch[i], s->in_info[k].name);
        need += at >= 0 ? inst->batch[i]->inputs[at].byte_size : 0; /* BYTES defaults do not exist */
      }
      if (need > inst->in_cap[k]) {
        inferd_plan_memory_free(inst->plan, STAGING_MEMORY, t->data);
        t->data = NULL;
        inst->in_cap[k] = 0;
        staging_error = inferd_plan_memory_alloc(inst->plan, STAGING_MEMORY, need, &t->data);
        if (staging_error) {
          staging_error = err_wrap(staging_error, "allocating %zu bytes for input '%s'", need, t->name);
          break;
        }
        inst->in_cap[k] = need;
      }
      item = 0;
    }
    for (int i = 0; i < n && !staging_error; i++) {
      const inferd_request *r = inst->batch[i];
      const int at = find_input(r, s->in_info[k].name);
      if (at < 0) { /* an optional input left out: its default, per item */
        const void *item_data;
        size_t item_size;
        if (!inferd_plan_input_default(inst->plan, k, &item_data, &item_size)) continue; /* checked on admission */
        for (int b = 0; b < (s->dynamic ? r->batch : 1); b++, off += item_size)
          memcpy((char *)t->data + off, item_data, item_size);
        continue;
      }
      const request_input *in = &r->inputs[at];
      char *dst = (char *)t->data + off;
      if (in->byte_size && in->memory != INFERD_MEMORY_GPU) memcpy(dst, in->data, in->byte_size);
      else if (in->byte_size && !in_place)
        staging_error =
            inferd_plan_memory_copy(inst->plan, dst, STAGING_MEMORY, in->data, INFERD_MEMORY_GPU, in->byte_size);
      off += in->byte_size;
    }
    t->byte_size = t->datatype == INFERD_TYPE_BYTES ? off : s->dynamic ? item * (size_t)total : item;
    if (s->dynamic) t->dims[0] = total;
  }
  for (int k = 0; k < s->n_out; k++)
    inst->out[k].byte_size = s->out_item_bytes[k] * (size_t)(s->dynamic ? s->cfg.max_batch_size : 1);
  const inferd_tensor *run_in = on_device ? inst->dev_run_in : inst->in;
  inst->run_out = inst->out;
  inst->scattered = false;
  if (in_place) {
    in_place_tensors(inst, inst->batch[0]);
    run_in = inst->in_place_in;
    inst->run_out = inst->in_place_out;
  }
  uint64_t t1 = clock_now_ns();
  /* Queued on the context's stream, then waited for: a GPU instance's copies
   * and kernels run asynchronously from the pinned staging; the CPU runs to
   * completion in the first call. */
  inferd_error *e = staging_error ? staging_error
                                  : inferd_context_run_async(inst->ctx, s->dynamic ? total : 1, run_in, s->n_in,
                                                             inst->run_out, s->n_out);
  if (!e && !in_place && inst->device.kind == INFERD_DEVICE_CUDA) {
    e = scatter_outputs(inst, n);
    inst->scattered = e == NULL;
  }
  /* Waited for even after an error, so that no copy still reads or writes
   * a request's memory once it is answered. */
  inferd_error *waited = inferd_context_wait(inst->ctx);
  if (!e) e = waited;
  else inferd_error_delete(waited);
  uint64_t t2 = clock_now_ns();
  int offset = 0;
  inferd_response **responses = mem_zalloc((size_t)(n + 1) * sizeof(*responses));
  inferd_error **errors = mem_zalloc((size_t)(n + 1) * sizeof(*errors));
  for (int i = 0; i < n; i++) {
    if (e)
      errors[i] = err_new(inferd_error_code_of(e), "%s", inferd_error_message(e));
    else
      errors[i] = split_outputs(inst, inst->batch[i], offset, &responses[i]);
    offset += inst->batch[i]->batch;
  }
  uint64_t t3 = clock_now_ns();
  if (!e) {
    atomic_fetch_add_explicit(&s->stats->inference_count, (uint64_t)total, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->stats->execution_count, 1, memory_order_relaxed);
    atomic_store_explicit(&s->stats->last_inference_ms, clock_wall_ns() / 1000000, memory_order_relaxed);
    stat_add(&s->stats->compute_input, t1 - t0);
    stat_add(&s->stats->compute_infer, t2 - t1);
    stat_add(&s->stats->compute_output, t3 - t2);
    stats_add_request_compute(s->stats, (uint32_t)n, t1 - t0, t2 - t1, t3 - t2);
    if (total <= s->stats->max_batch) {
      batch_stat *bs = &s->stats->batch_stats[total];
      stat_add(&bs->compute_input, t1 - t0);
      stat_add(&bs->compute_infer, t2 - t1);
      stat_add(&bs->compute_output, t3 - t2);
    }
  }
  inferd_error_delete(e);
  for (int i = 0; i < n; i++) {
    inferd_request *r = inst->batch[i];
    uint64_t took = clock_now_ns() - r->enqueue_ns;
    if (errors[i]) {
      stat_fail(s->stats, stat_failure_of_run(inferd_error_code_of(errors[i])), took);
      answer(s, r, response_for_error(r, errors[i]));
    } else {
      stat_add(&s->stats->success, took);
      answer(s, r, responses[i]);
    }
  }
  free(responses);
  free(errors);
  pthread_mutex_lock(&s->lock);
  s->running -= n;
  inst->busy = false;
  /* Work queued while this instance was lent to a caller waits for it. */
  if (first_request(s)) pthread_cond_broadcast(&s->work);
  pthread_mutex_unlock(&s->lock);
}

static void *instance_main(void *arg) {
  instance *inst = arg;
  scheduler *s = inst->s;
  for (;;) {
    inferd_request *expired = NULL;
    int n = take_batch(inst, &expired);
    while (expired) {
      inferd_request *next = expired->next;
      if (is_cancelled(expired)) {
        stat_fail(s->stats, STAT_FAILURE_CANCELED, clock_now_ns() - expired->enqueue_ns);
        answer(s, expired, response_for_error(expired, cancelled_error(expired)));
        expired = next;
        continue;
      }
      stat_fail(s->stats, STAT_FAILURE_REJECTED, clock_now_ns() - expired->enqueue_ns);
      answer(s, expired, response_for_error(expired, err_new(INFERD_ERROR_UNAVAILABLE,
                                    "request timed out in the queue of model '%s' after %llu us",
                                    expired->model_name, (unsigned long long)((clock_now_ns() - expired->enqueue_ns) / 1000))));
      expired = next;
    }
    if (n > 0) {
      run_batch(inst, n);
    } else if (n == 0) {
      pthread_mutex_lock(&s->lock);
      bool done = s->stopping && !first_request(s);
      pthread_mutex_unlock(&s->lock);
      if (done) break;
    }
  }
  return NULL;
}

/* Staging is page-locked host memory where the plan's device has it (a GPU
 * copies from it asynchronously), plain memory on the CPU. */
static inferd_error *staging_alloc(const inferd_plan *plan, inferd_tensor *t, const inferd_tensor_info *info,
                                   size_t item, int items, bool dynamic) {
  *t = (inferd_tensor){.name = info->name, .datatype = info->datatype, .rank = info->rank, .memory = STAGING_MEMORY};
  for (int d = 0; d < info->rank; d++) t->dims[d] = info->dims[d] < 0 ? items : info->dims[d];
  size_t bytes = item * (size_t)(dynamic ? items : 1);
  t->byte_size = bytes;
  inferd_error *e = inferd_plan_memory_alloc(plan, STAGING_MEMORY, bytes ? bytes : 64, &t->data);
  return e ? err_wrap(e, "allocating %zu bytes of staging for '%s'", bytes, info->name) : NULL;
}

static void instances_free(scheduler *s) {
  for (int i = 0; i < s->cfg.instance_count && s->instances; i++) {
    instance *inst = &s->instances[i];
    inferd_context_delete(inst->ctx);
    for (int k = 0; inst->in && k < s->n_in; k++) inferd_plan_memory_free(inst->plan, STAGING_MEMORY, inst->in[k].data);
    /* A BYTES output's data belongs to the context. */
    for (int k = 0; inst->out && k < s->n_out; k++)
      if (s->out_info[k].datatype != INFERD_TYPE_BYTES)
        inferd_plan_memory_free(inst->plan, STAGING_MEMORY, inst->out[k].data);
    free(inst->in_cap);
    free(inst->in);
    free(inst->out);
    free(inst->in_place_in);
    free(inst->in_place_out);
    for (int k = 0; inst->dev_in && k < s->n_in; k++)
      inferd_plan_memory_free(inst->plan, INFERD_MEMORY_GPU, inst->dev_in[k]);
    free(inst->dev_in);
    free(inst->dev_run_in);
    free(inst->copies);
    free(inst->batch);
    free(inst->sizes);
  }
  free(s->instances);
}

static void scheduler_free(scheduler *s) {
  instances_free(s);
  pthread_mutex_destroy(&s->lock);
  pthread_cond_destroy(&s->work);
  pthread_mutex_destroy(&s->order_lock);
  free(s->queues);
  free(s->in_info);
  free(s->out_info);
  free(s->in_item_bytes);
  free(s->out_item_bytes);
  free(s);
}

inferd_error *scheduler_create(inferd_plan *const *plans, const scheduler_config *config,
                               const scheduler_output_info *outputs, model_stats *stats, int64_t version,
                               scheduler **out) {
  *out = NULL;
  scheduler *s = mem_zalloc(sizeof(*s));
  inferd_plan *plan = plans[0]; /* every instance's plan has the same inputs and outputs */
  s->cfg = *config;
  if (s->cfg.priority_levels < 1) s->cfg.priority_levels = 1;
  if (s->cfg.default_priority_level < 1 || s->cfg.default_priority_level > s->cfg.priority_levels)
    s->cfg.default_priority_level = s->cfg.priority_levels;
  if (s->cfg.instance_count < 1) s->cfg.instance_count = 1;
  s->output_info = outputs;
  s->stats = stats;
  s->version = version;
  s->dynamic = inferd_plan_has_dynamic_batch(plan);
  s->n_in = inferd_plan_input_count(plan);
  s->n_out = inferd_plan_output_count(plan);
  s->in_info = mem_zalloc((size_t)(s->n_in + 1) * sizeof(inferd_tensor_info));
  s->out_info = mem_zalloc((size_t)(s->n_out + 1) * sizeof(inferd_tensor_info));
  s->in_item_bytes = mem_zalloc((size_t)(s->n_in + 1) * sizeof(size_t));
  s->out_item_bytes = mem_zalloc((size_t)(s->n_out + 1) * sizeof(size_t));
  for (int k = 0; k < s->n_in; k++) {
    inferd_plan_input(plan, k, &s->in_info[k]);
    s->in_item_bytes[k] = item_bytes(&s->in_info[k], s->dynamic);
  }
  for (int k = 0; k < s->n_out; k++) {
    inferd_plan_output(plan, k, &s->out_info[k]);
    s->out_item_bytes[k] = item_bytes(&s->out_info[k], s->dynamic);
  }
  pthread_mutex_init(&s->lock, NULL);
  pthread_cond_init(&s->work, NULL);
  pthread_mutex_init(&s->order_lock, NULL);
  s->ordered = s->cfg.preserve_ordering && s->cfg.instance_count > 1;
  s->queues = mem_zalloc((size_t)s->cfg.priority_levels * sizeof(request_queue));
  int items = s->dynamic ? (s->cfg.max_batch_size > 0 ? s->cfg.max_batch_size : 1) : 1;
  s->instances = mem_zalloc((size_t)s->cfg.instance_count * sizeof(instance));
  inferd_error *e = NULL;
  for (int i = 0; i < s->cfg.instance_count && !e; i++) {
    instance *inst = &s->instances[i];
    inst->s = s;
    inst->index = i;
    inst->plan = plans[i];
    inst->device = inferd_plan_device(plans[i]);
    inst->in = mem_zalloc((size_t)(s->n_in + 1) * sizeof(inferd_tensor));
    inst->out = mem_zalloc((size_t)(s->n_out + 1) * sizeof(inferd_tensor));
    inst->in_place_in = mem_zalloc((size_t)(s->n_in + 1) * sizeof(inferd_tensor));
    inst->in_place_out = mem_zalloc((size_t)(s->n_out + 1) * sizeof(inferd_tensor));
    inst->dev_in = mem_zalloc((size_t)(s->n_in + 1) * sizeof(void *));
    inst->dev_run_in = mem_zalloc((size_t)(s->n_in + 1) * sizeof(inferd_tensor));
    /* A batch holds at most `items` requests (each of one item or more). */
    inst->copies = mem_zalloc((size_t)(items + 1) * (size_t)(s->n_in + s->n_out + 1) * sizeof(inferd_copy));
    inst->batch = mem_zalloc((size_t)(items + 1) * sizeof(inferd_request *));
    inst->sizes = mem_zalloc((size_t)(s->cfg.max_batch_size + 2) * sizeof(int));
    inst->in_cap = mem_zalloc((size_t)(s->n_in + 1) * sizeof(size_t));
    /* A BYTES input's staging (item size 0) grows to each batch's need. */
    for (int k = 0; k < s->n_in && !e; k++)
      e = staging_alloc(inst->plan, &inst->in[k], &s->in_info[k], s->in_item_bytes[k], items, s->dynamic);
    for (int k = 0; k < s->n_out && !e; k++)
      if (s->out_info[k].datatype != INFERD_TYPE_BYTES) /* the context provides those */
        e = staging_alloc(inst->plan, &inst->out[k], &s->out_info[k], s->out_item_bytes[k], items, s->dynamic);
      else
        inst->out[k] = (inferd_tensor){.name = s->out_info[k].name, .datatype = INFERD_TYPE_BYTES};
    if (!e)
      e = inferd_context_create(inst->plan, &(inferd_context_options){.threads = s->cfg.threads_per_instance},
                                &inst->ctx);
  }
  for (int i = 0; i < s->cfg.instance_count && !e; i++) {
    if (pthread_create(&s->instances[i].thread, NULL, instance_main, &s->instances[i]) != 0)
      e = err_new(INFERD_ERROR_INTERNAL, "starting instance thread %d", i);
    else
      s->instances[i].started = true;
  }
  if (e) {
    scheduler_delete(s); /* stops and joins the instances already started */
    return e;
  }
  *out = s;
  return NULL;
}

/* Queue bookkeeping of a request about to be queued or run. */
static void request_admit(scheduler *s, inferd_request *r) {
  uint64_t now = clock_now_ns();
  r->enqueue_ns = now;
  uint64_t timeout = s->cfg.default_timeout_us;
  if (r->timeout_us && (s->cfg.allow_timeout_override || !timeout)) timeout = r->timeout_us;
  r->deadline_ns = timeout ? clock_add_sat(now, clock_us_to_ns(timeout)) : 0;
  uint64_t levels = (uint64_t)s->cfg.priority_levels;
  r->priority_level = r->priority ? (int)(r->priority > levels ? levels : r->priority) : s->cfg.default_priority_level;
}

/* Runs shorter than this may run on the caller's thread (see below). */
enum { INLINE_MAX_RUN_NS = 200000, INLINE_MIN_RUNS = 16 };

bool scheduler_try_inline(scheduler *s, inferd_request *r) {
  /* Only models whose runs are known to be short: the caller is usually a
   * network thread, which must not be held up for long. */
  if (s->cfg.dynamic_batching && s->cfg.max_queue_delay_us > 0) return false; /* it asked to wait for company */
  uint64_t runs = atomic_load_explicit(&s->stats->compute_infer.count, memory_order_relaxed);
  uint64_t ns = atomic_load_explicit(&s->stats->compute_infer.ns, memory_order_relaxed);
  if (runs < INLINE_MIN_RUNS || ns / runs > INLINE_MAX_RUN_NS) return false;
  pthread_mutex_lock(&s->lock);
  instance *idle = NULL;
  if (!s->stopping && s->queued == 0)
    for (int i = 0; i < s->cfg.instance_count && !idle; i++)
      if (!s->instances[i].busy) idle = &s->instances[i];
  if (idle) {
    idle->busy = true;
    s->running++;
    r->seq = s->next_seq++;
  }
  pthread_mutex_unlock(&s->lock);
  if (!idle) return false;
  request_admit(s, r);
  idle->batch[0] = r;
  run_batch(idle, 1);
  return true;
}

inferd_error *scheduler_enqueue(scheduler *s, inferd_request *r) {
  request_admit(s, r);
  pthread_mutex_lock(&s->lock);
  if (s->stopping) {
    pthread_mutex_unlock(&s->lock);
    stat_fail(s->stats, STAT_FAILURE_REJECTED, 0);
    return err_new(INFERD_ERROR_UNAVAILABLE, "model '%s' is being unloaded", r->model_name);
  }
  const uint32_t bound = s->cfg.max_queue_size ? s->cfg.max_queue_size : SCHEDULER_DEFAULT_MAX_QUEUE_SIZE;
  if ((uint32_t)s->queued >= bound) {
    pthread_mutex_unlock(&s->lock);
    stat_fail(s->stats, STAT_FAILURE_REJECTED, 0);
    return err_new(INFERD_ERROR_OVERLOADED,
                   "the queue of model '%s' is full (max_queue_size %u%s); retry later, or elsewhere", r->model_name,
                   bound, s->cfg.max_queue_size ? "" : ", the default");
  }
  r->seq = s->next_seq++;
  queue_push(&s->queues[r->priority_level - 1], r);
  s->queued++;
  /* Broadcast: an instance lent to a caller ignores the wakeup, and another
   * idle one must not miss it. */
  pthread_cond_broadcast(&s->work);
  pthread_mutex_unlock(&s->lock);
  return NULL;
}

int scheduler_queued(scheduler *s) {
  pthread_mutex_lock(&s->lock);
  int n = s->queued;
  pthread_mutex_unlock(&s->lock);
  return n;
}

/* Answers a list of requests taken from the queues without running them:
 * `code` saying `why`, counted as `reason`. */
static void answer_unrun(scheduler *s, inferd_request *list, stat_failure_reason reason, inferd_error_code code,
                         const char *why) {
  while (list) {
    inferd_request *next = list->next;
    stat_fail(s->stats, reason, clock_now_ns() - list->enqueue_ns);
    answer(s, list, response_for_error(list, err_new(code, "request of model '%s' not run: %s", list->model_name, why)));
    list = next;
  }
}

int scheduler_cancel_queued(scheduler *s, const char *why) {
  inferd_request *list = NULL;
  pthread_mutex_lock(&s->lock);
  int n = s->queued;
  for (int l = 0; l < s->cfg.priority_levels; l++)
    for (inferd_request *r; (r = queue_pop(&s->queues[l]));) {
      r->next = list;
      list = r;
    }
  s->queued = 0;
  pthread_mutex_unlock(&s->lock);
  answer_unrun(s, list, STAT_FAILURE_REJECTED, INFERD_ERROR_OVERLOADED, why);
  return n;
}

int scheduler_cancel_flagged(scheduler *s, const char *why) {
  inferd_request *list = NULL;
  int n = 0;
  pthread_mutex_lock(&s->lock);
  for (int l = 0; l < s->cfg.priority_levels; l++) {
    request_queue *q = &s->queues[l];
    inferd_request *prev = NULL, *r = q->head;
    while (r) {
      inferd_request *next = r->next;
      if (is_cancelled(r)) {
        if (prev)
          prev->next = next;
        else
          q->head = next;
        if (q->tail == r) q->tail = prev;
        r->next = list;
        list = r;
        n++;
      } else {
        prev = r;
      }
      r = next;
    }
  }
  s->queued -= n;
  pthread_mutex_unlock(&s->lock);
  answer_unrun(s, list, STAT_FAILURE_CANCELED, INFERD_ERROR_CANCELLED, why);
  return n;
}

void scheduler_delete(scheduler *s) {
  if (!s) return;
  pthread_mutex_lock(&s->lock);
  s->stopping = true;
  pthread_cond_broadcast(&s->work);
  pthread_mutex_unlock(&s->lock);
  for (int i = 0; i < s->cfg.instance_count; i++)
    if (s->instances[i].started) pthread_join(s->instances[i].thread, NULL);
  scheduler_free(s);
}
