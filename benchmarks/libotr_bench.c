/*
 * libotr_bench: libotr's side of offrecord's benchmarks (benchmarks/run.py).
 *
 * Two libotr userstates in this process, "alice" and "bob", talk through an
 * in-memory FIFO: whatever libotr injects on one side (inject_message) is
 * queued and handed to otrl_message_receiving on the other.  Each side
 * believes it talks to "peer-<i>", so any number of sessions run between
 * the two userstates with one DSA key each.  offrecord's workloads
 * (benchmarks/offrecord_bench.py) are built the same way.
 *
 * Commands, one per line on stdin; one JSON object per line on stdout.
 * A workload is set up by "start", run one measured chunk per "step" (so
 * that run.py can alternate chunks with offrecord's), then "finish" checks
 * it and reports what libotr called:
 *
 *   start keygen REPS          DSA-1024 key generation (libotr's generate
 *                              start + calculate: gcry_pk_genkey); a step
 *                              is one key
 *   start ake REPS             query -> both sides encrypted, a new peer
 *                              each step
 *   start sessions N           N AKEs in flight together (throughput), in
 *                              one step; finish adds the heap (mallinfo2)
 *                              and RSS growth per established session
 *   start pingpong N BYTES     N messages alternating direction, 100 a step
 *   start oneway N BYTES       N messages from alice to bob, 100 a step
 *   start smp REPS             a full successful SMP, both sides told
 *   start fragment REPS BYTES MAX   a BYTES message fragmented at MAX
 *                              characters, reassembled and decrypted
 *   step [N]   N steps back to back (default 1)
 *              -> {"samples": [seconds per operation, one per step]}
 *   finish     -> {"counts": {...}}
 *   quit
 *
 * "counts" are the gcry_mpi_powm, gcry_pk_sign, gcry_pk_verify and
 * gcry_pk_genkey calls libotr made inside the measured sections, and the
 * number of operations they cover.  They are counted by defining those four
 * functions here: libotr.so's references bind to the executable's
 * definitions first, which count and forward to libgcrypt's (dlsym
 * RTLD_NEXT).  The cost is one indirect call per operation that itself
 * takes microseconds to milliseconds.
 *
 * Build: gcc -std=gnu11 -Wall -Wextra -O2 -o libotr_bench libotr_bench.c
 *            -lotr -lgcrypt -ldl
 */

#define _GNU_SOURCE

#include <dlfcn.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <gcrypt.h>

/* libotr's headers are not self-contained; this order works. */
#include <libotr/proto.h>
#include <libotr/context.h>
#include <libotr/instag.h>
#include <libotr/message.h>
#include <libotr/privkey.h>
#include <libotr/sm.h>
#include <libotr/tlv.h>
#include <libotr/userstate.h>

#define PROTOCOL "bench"
#define POLICY OTRL_POLICY_OPPORTUNISTIC
#define SMP_SECRET "the colour of the first bike"
#define MESSAGE_BATCH 100UL

static void die(const char *fmt, ...)
{
    va_list ap;
    fputs("libotr_bench: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) die("out of memory");
    return p;
}

static char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(xmalloc(n), s, n);
}

/* ------------------------------------------------------------------ */
/* Counting libgcrypt calls made by libotr                              */
/* ------------------------------------------------------------------ */

typedef struct {
    unsigned long powm, sign, verify, genkey;
} Counts;

static Counts counts;   /* every call since start-up */

static void *next_symbol(const char *name)
{
    void *f = dlsym(RTLD_NEXT, name);
    if (!f) die("cannot find %s in libgcrypt", name);
    return f;
}

void gcry_mpi_powm(gcry_mpi_t w, const gcry_mpi_t b, const gcry_mpi_t e,
        const gcry_mpi_t m)
{
    static void (*real)(gcry_mpi_t, const gcry_mpi_t, const gcry_mpi_t,
            const gcry_mpi_t);
    if (!real) *(void **)&real = next_symbol("gcry_mpi_powm");
    counts.powm++;
    real(w, b, e, m);
}

gcry_error_t gcry_pk_sign(gcry_sexp_t *result, gcry_sexp_t data,
        gcry_sexp_t skey)
{
    static gcry_error_t (*real)(gcry_sexp_t *, gcry_sexp_t, gcry_sexp_t);
    if (!real) *(void **)&real = next_symbol("gcry_pk_sign");
    counts.sign++;
    return real(result, data, skey);
}

gcry_error_t gcry_pk_verify(gcry_sexp_t sigval, gcry_sexp_t data,
        gcry_sexp_t pkey)
{
    static gcry_error_t (*real)(gcry_sexp_t, gcry_sexp_t, gcry_sexp_t);
    if (!real) *(void **)&real = next_symbol("gcry_pk_verify");
    counts.verify++;
    return real(sigval, data, pkey);
}

gcry_error_t gcry_pk_genkey(gcry_sexp_t *r_key, gcry_sexp_t s_parms)
{
    static gcry_error_t (*real)(gcry_sexp_t *, gcry_sexp_t);
    if (!real) *(void **)&real = next_symbol("gcry_pk_genkey");
    counts.genkey++;
    return real(r_key, s_parms);
}

/* ------------------------------------------------------------------ */
/* Measuring                                                            */
/* ------------------------------------------------------------------ */

static Counts counted;          /* calls inside the measured sections */
static Counts counts_at_begin;
static unsigned long counted_ops;
static struct timespec started;
static double last_sample;      /* seconds per operation of the last section */

/* Both sides time with their process's CPU clock, not the wall clock: on a
 * shared machine a section that runs longer than a scheduler slice would
 * otherwise also count the time other processes ran in between. */
static void measure_begin(void)
{
    counts_at_begin = counts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &started);
}

static void measure_end(unsigned long ops)
{
    struct timespec now;
    double secs;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &now);
    secs = (double)(now.tv_sec - started.tv_sec) +
            (double)(now.tv_nsec - started.tv_nsec) / 1e9;
    last_sample = secs / (double)ops;
    counted_ops += ops;
    counted.powm += counts.powm - counts_at_begin.powm;
    counted.sign += counts.sign - counts_at_begin.sign;
    counted.verify += counts.verify - counts_at_begin.verify;
    counted.genkey += counts.genkey - counts_at_begin.genkey;
}

/* ------------------------------------------------------------------ */
/* Two sides and the network between them                               */
/* ------------------------------------------------------------------ */

typedef struct Side Side;

typedef struct Packet {
    struct Packet *next;
    Side *to;
    char *peer;     /* the conversation, as both sides name it */
    char *text;
} Packet;

struct Side {
    OtrlUserState us;
    const char *account;
    Side *other;
    int max_message_size;        /* 0 = unlimited */
    unsigned long received;      /* decrypted messages handed to the user */
    size_t last_length;          /* length of the last one */
    ConnContext *smp_asked;      /* context waiting for our secret */
    unsigned long smp_succeeded;
};

static Side alice = { .account = "alice" };
static Side bob = { .account = "bob" };
static Packet *queue_head, *queue_tail;
static FILE *keyfile;            /* both long-term keys, generated at start */

static void enqueue(Side *to, const char *peer, const char *text)
{
    Packet *p = xmalloc(sizeof(*p));
    p->next = NULL;
    p->to = to;
    p->peer = xstrdup(peer);
    p->text = xstrdup(text);
    if (queue_tail) queue_tail->next = p;
    else queue_head = p;
    queue_tail = p;
}

static OtrlMessageAppOps ops;

/* Delivers queued messages (and whatever they cause) until none is left. */
static void pump(void)
{
    while (queue_head) {
        Packet *p = queue_head;
        Side *to = p->to;
        char *newmsg = NULL;
        OtrlTLV *tlvs = NULL;
        int ignore;

        queue_head = p->next;
        if (!queue_head) queue_tail = NULL;
        ignore = otrl_message_receiving(to->us, &ops, to, to->account,
                PROTOCOL, p->peer, p->text, &newmsg, &tlvs, NULL, NULL, NULL);
        if (!ignore && newmsg) {
            to->received++;
            to->last_length = strlen(newmsg);
        }
        otrl_message_free(newmsg);
        otrl_tlv_free(tlvs);
        free(p->peer);
        free(p->text);
        free(p);
    }
}

/* ------------------------------------------------------------------ */
/* libotr callbacks                                                     */
/* ------------------------------------------------------------------ */

static OtrlPolicy op_policy(void *opdata, ConnContext *context)
{
    (void)opdata;
    (void)context;
    return POLICY;
}

static void op_create_privkey(void *opdata, const char *accountname,
        const char *protocol)
{
    (void)opdata;
    die("no private key for %s/%s", accountname, protocol);
}

static int op_is_logged_in(void *opdata, const char *accountname,
        const char *protocol, const char *recipient)
{
    (void)opdata;
    (void)accountname;
    (void)protocol;
    (void)recipient;
    return 1;
}

static void op_inject_message(void *opdata, const char *accountname,
        const char *protocol, const char *recipient, const char *message)
{
    Side *from = opdata;
    (void)accountname;
    (void)protocol;
    enqueue(from->other, recipient, message);
}

static void op_nothing(void *opdata)
{
    (void)opdata;
}

static void op_new_fingerprint(void *opdata, OtrlUserState us,
        const char *accountname, const char *protocol, const char *username,
        unsigned char fingerprint[20])
{
    (void)opdata;
    (void)us;
    (void)accountname;
    (void)protocol;
    (void)username;
    (void)fingerprint;
}

static void op_context_event(void *opdata, ConnContext *context)
{
    (void)opdata;
    (void)context;
}

static void op_still_secure(void *opdata, ConnContext *context, int is_reply)
{
    (void)opdata;
    (void)context;
    (void)is_reply;
}

static int op_max_message_size(void *opdata, ConnContext *context)
{
    Side *side = opdata;
    (void)context;
    return side->max_message_size;
}

static const char *op_otr_error_message(void *opdata, ConnContext *context,
        OtrlErrorCode code)
{
    (void)opdata;
    (void)context;
    (void)code;
    return "error";
}

static void op_otr_error_message_free(void *opdata, const char *msg)
{
    (void)opdata;
    (void)msg;
}

static void op_handle_smp_event(void *opdata, OtrlSMPEvent event,
        ConnContext *context, unsigned short progress, char *question)
{
    Side *side = opdata;
    (void)progress;
    (void)question;
    switch (event) {
        case OTRL_SMPEVENT_ASK_FOR_SECRET:
        case OTRL_SMPEVENT_ASK_FOR_ANSWER:
            side->smp_asked = context;
            break;
        case OTRL_SMPEVENT_SUCCESS:
            side->smp_succeeded++;
            break;
        case OTRL_SMPEVENT_IN_PROGRESS:
        case OTRL_SMPEVENT_NONE:
            break;
        default:
            die("%s: SMP event %d", side->account, (int)event);
    }
}

static void op_handle_msg_event(void *opdata, OtrlMessageEvent event,
        ConnContext *context, const char *message, gcry_error_t err)
{
    Side *side = opdata;
    (void)context;
    (void)message;
    switch (event) {
        case OTRL_MSGEVENT_NONE:
        case OTRL_MSGEVENT_LOG_HEARTBEAT_RCVD:
        case OTRL_MSGEVENT_LOG_HEARTBEAT_SENT:
            break;
        default:
            die("%s: message event %d (%s)", side->account, (int)event,
                    gcry_strerror(err));
    }
}

static void op_create_instag(void *opdata, const char *accountname,
        const char *protocol)
{
    (void)opdata;
    die("no instance tag for %s/%s", accountname, protocol);
}

static void op_timer_control(void *opdata, unsigned int interval)
{
    (void)opdata;
    (void)interval;
}

static void init_ops(void)
{
    memset(&ops, 0, sizeof(ops));
    ops.policy = op_policy;
    ops.create_privkey = op_create_privkey;
    ops.is_logged_in = op_is_logged_in;
    ops.inject_message = op_inject_message;
    ops.update_context_list = op_nothing;
    ops.new_fingerprint = op_new_fingerprint;
    ops.write_fingerprints = op_nothing;
    ops.gone_secure = op_context_event;
    ops.gone_insecure = op_context_event;
    ops.still_secure = op_still_secure;
    ops.max_message_size = op_max_message_size;
    ops.otr_error_message = op_otr_error_message;
    ops.otr_error_message_free = op_otr_error_message_free;
    ops.handle_smp_event = op_handle_smp_event;
    ops.handle_msg_event = op_handle_msg_event;
    ops.create_instag = op_create_instag;
    ops.timer_control = op_timer_control;
}

/* ------------------------------------------------------------------ */
/* Setting up                                                           */
/* ------------------------------------------------------------------ */

static void generate_keys(void)
{
    OtrlUserState us = otrl_userstate_create();
    FILE *scratch = tmpfile();
    keyfile = tmpfile();
    if (!scratch || !keyfile) die("cannot create a temporary file");
    /* The file written last holds every key of the userstate: both. */
    if (otrl_privkey_generate_FILEp(us, scratch, alice.account, PROTOCOL) ||
            otrl_privkey_generate_FILEp(us, keyfile, bob.account, PROTOCOL))
        die("key generation failed");
    fclose(scratch);
    otrl_userstate_free(us);
}

/* Fresh userstates for both sides, with the keys made at start-up. */
static void new_sides(void)
{
    Side *sides[2] = { &alice, &bob };
    int i;
    for (i = 0; i < 2; i++) {
        Side *s = sides[i];
        FILE *sink;
        if (s->us) otrl_userstate_free(s->us);
        s->us = otrl_userstate_create();
        rewind(keyfile);
        if (otrl_privkey_read_FILEp(s->us, keyfile))
            die("cannot read the keys back");
        sink = fopen("/dev/null", "w");
        if (!sink ||
                otrl_instag_generate_FILEp(s->us, sink, s->account, PROTOCOL))
            die("cannot make an instance tag");
        fclose(sink);
        s->max_message_size = 0;
        s->received = 0;
        s->smp_asked = NULL;
        s->smp_succeeded = 0;
    }
    alice.other = &bob;
    bob.other = &alice;
}

static ConnContext *context_of(Side *side, const char *peer)
{
    return otrl_context_find(side->us, peer, side->account, PROTOCOL,
            OTRL_INSTAG_BEST, 0, NULL, NULL, NULL);
}

static void check_encrypted(const char *peer)
{
    Side *sides[2] = { &alice, &bob };
    int i;
    for (i = 0; i < 2; i++) {
        ConnContext *c = context_of(sides[i], peer);
        if (!c || c->msgstate != OTRL_MSGSTATE_ENCRYPTED)
            die("%s: %s is not encrypted", sides[i]->account, peer);
    }
}

/* Alice asks for OTR, as a client does: a query message in the clear. */
static void send_query(const char *peer)
{
    char *query = otrl_proto_default_query_msg(alice.account, POLICY);
    if (!query) die("out of memory");
    enqueue(&bob, peer, query);
    free(query);
}

static void send_text(Side *from, const char *peer, const char *text)
{
    char *out = NULL;
    gcry_error_t err = otrl_message_sending(from->us, &ops, from,
            from->account, PROTOCOL, peer, OTRL_INSTAG_BEST, text, NULL, &out,
            OTRL_FRAGMENT_SEND_ALL, NULL, NULL, NULL);
    if (err) die("sending failed: %s", gcry_strerror(err));
    otrl_message_free(out);  /* already injected */
}

static void secure(const char *peer)
{
    send_query(peer);
    pump();
    check_encrypted(peer);
}

static char *make_text(size_t size, size_t seed)
{
    static const char letters[] = "abcdefghijklmnopqrstuvwxyz0123456789 ";
    size_t n = sizeof(letters) - 1, i;
    char *s = xmalloc(size + 1);
    for (i = 0; i < size; i++) s[i] = letters[(seed + 7 * i) % n];
    s[size] = '\0';
    return s;
}

static void peer_name(char *buf, size_t len, unsigned long i)
{
    snprintf(buf, len, "peer-%lu", i);
}

/* ------------------------------------------------------------------ */
/* Workloads                                                            */
/* ------------------------------------------------------------------ */

/* A workload is set up by "start", advanced one measured chunk at a time
 * by "step" (so that run.py can alternate chunks with offrecord's), and
 * checked and torn down by "finish". */
typedef struct {
    const char *name;
    unsigned long a, b, c;      /* the command's numbers */
    unsigned long chunks;       /* how many steps it takes */
    unsigned long step;         /* steps done */
    char **texts;
    char *text;
} Run;

static Run run;

static const char *PEER = "peer-0";

static void keygen_step(void)
{
    OtrlUserState us = otrl_userstate_create();
    void *newkey = NULL;
    measure_begin();
    if (otrl_privkey_generate_start(us, "k", PROTOCOL, &newkey) ||
            otrl_privkey_generate_calculate(newkey))
        die("key generation failed");
    measure_end(1);
    otrl_privkey_generate_cancelled(us, newkey);
    otrl_userstate_free(us);
}

static void ake_step(void)
{
    char peer[32];
    peer_name(peer, sizeof(peer), run.step);
    measure_begin();
    send_query(peer);
    pump();
    measure_end(1);
    check_encrypted(peer);
}

static size_t heap_in_use(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

static size_t rss(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f || fscanf(f, "%ld %ld", &pages, &resident) != 2)
        die("cannot read /proc/self/statm");
    fclose(f);
    return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}

static double heap_per_session, rss_per_session;

/* All the AKEs at once: every query first, then deliver until quiet. */
static void sessions_step(void)
{
    unsigned long n = run.a, i;
    char peer[32];
    size_t heap0 = heap_in_use(), rss0 = rss();
    measure_begin();
    for (i = 0; i < n; i++) {
        peer_name(peer, sizeof(peer), i);
        send_query(peer);
    }
    pump();
    measure_end(n);
    heap_per_session = ((double)heap_in_use() - (double)heap0) / (double)n;
    rss_per_session = ((double)rss() - (double)rss0) / (double)n;
    for (i = 0; i < n; i++) {
        peer_name(peer, sizeof(peer), i);
        check_encrypted(peer);
    }
}

/* One batch of MESSAGE_BATCH messages (pingpong: alternating direction). */
static void exchange_step(int alternate)
{
    unsigned long start = run.step * MESSAGE_BATCH, i;
    unsigned long stop = start + MESSAGE_BATCH < run.a ? start + MESSAGE_BATCH : run.a;
    measure_begin();
    for (i = start; i < stop; i++) {
        send_text(alternate && i % 2 ? &bob : &alice, PEER, run.texts[i]);
        pump();
    }
    measure_end(stop - start);
}

static void smp_step(void)
{
    const unsigned char *secret = (const unsigned char *)SMP_SECRET;
    size_t secretlen = strlen(SMP_SECRET);
    ConnContext *ours = context_of(&alice, PEER);
    measure_begin();
    otrl_message_initiate_smp(alice.us, &ops, &alice, ours, secret, secretlen);
    pump();
    if (!bob.smp_asked) die("bob was not asked for the secret");
    otrl_message_respond_smp(bob.us, &ops, &bob, bob.smp_asked, secret,
            secretlen);
    bob.smp_asked = NULL;
    pump();
    measure_end(1);
    if (alice.smp_succeeded != run.step + 1 || bob.smp_succeeded != run.step + 1)
        die("SMP did not succeed on both sides");
}

static void fragment_step(void)
{
    measure_begin();
    send_text(&alice, PEER, run.text);
    pump();
    measure_end(1);
    if (bob.received != run.step + 1 || bob.last_length != run.b)
        die("the fragmented message did not arrive whole");
}

static int is(const char *name)
{
    return strcmp(run.name, name) == 0;
}

/* "start NAME A [B [C]]": set up; the reply says how many steps follow. */
static void start_run(const char *name, int given)
{
    unsigned long i;
    static const struct { const char *name; int args; } known[] = {
        {"keygen", 1}, {"ake", 1}, {"sessions", 1}, {"pingpong", 2},
        {"oneway", 2}, {"smp", 1}, {"fragment", 3},
    };
    run.name = NULL;
    for (i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if (strcmp(name, known[i].name) == 0 && given == known[i].args)
            run.name = known[i].name;
    if (!run.name || run.a == 0) die("bad start command for %s", name);
    run.step = 0;
    run.chunks = run.a;
    memset(&counted, 0, sizeof(counted));
    counted_ops = 0;
    if (is("keygen")) return;
    new_sides();
    if (is("sessions")) {
        run.chunks = 1;
    } else if (is("pingpong") || is("oneway")) {
        run.chunks = (run.a + MESSAGE_BATCH - 1) / MESSAGE_BATCH;
        secure(PEER);
        run.texts = xmalloc(run.a * sizeof(*run.texts));
        for (i = 0; i < run.a; i++) run.texts[i] = make_text(run.b, i);
    } else if (is("smp")) {
        secure(PEER);
    } else if (is("fragment")) {
        alice.max_message_size = (int)run.c;
        secure(PEER);
        run.text = make_text(run.b, 1);
    }
}

static void step_run(void)
{
    if (!run.name || run.step >= run.chunks) die("step without a pending step");
    if (is("keygen")) keygen_step();
    else if (is("ake")) ake_step();
    else if (is("sessions")) sessions_step();
    else if (is("pingpong")) exchange_step(1);
    else if (is("oneway")) exchange_step(0);
    else if (is("smp")) smp_step();
    else fragment_step();
    run.step++;
}

static void finish_run(void)
{
    unsigned long i;
    if (!run.name || run.step != run.chunks) die("finish before the last step");
    if ((is("pingpong") || is("oneway")) &&
            alice.received + bob.received != run.a)
        die("%lu of %lu messages arrived", alice.received + bob.received, run.a);
    if (run.texts) {
        for (i = 0; i < run.a; i++) free(run.texts[i]);
        free(run.texts);
        run.texts = NULL;
    }
    free(run.text);
    run.text = NULL;
}

/* ------------------------------------------------------------------ */
/* Main loop                                                            */
/* ------------------------------------------------------------------ */

int main(void)
{
    char line[256];

    if (otrl_init(OTRL_VERSION_MAJOR, OTRL_VERSION_MINOR, OTRL_VERSION_SUB))
        die("libotr initialisation failed");
    init_ops();
    generate_keys();
    printf("{\"ready\":true,\"libotr\":\"%s\",\"libgcrypt\":\"%s\"}\n",
            otrl_version(), gcry_check_version(NULL));
    fflush(stdout);

    while (fgets(line, sizeof(line), stdin)) {
        char cmd[16], name[16];
        int n = sscanf(line, "%15s %15s %lu %lu %lu", cmd, name, &run.a,
                &run.b, &run.c);
        if (n < 1) continue;
        if (strcmp(cmd, "quit") == 0) break;
        if (strcmp(cmd, "start") == 0 && n >= 3) {
            start_run(name, n - 2);
            printf("{\"chunks\":%lu}\n", run.chunks);
        } else if (strcmp(cmd, "step") == 0 && n <= 2) {
            /* "step [N]": N steps back to back (default 1). */
            unsigned long count = n == 2 ? strtoul(name, NULL, 10) : 1, i;
            if (count == 0) die("bad command: %s", line);
            printf("{\"samples\":[");
            for (i = 0; i < count; i++) {
                step_run();
                printf("%s%.9g", i ? "," : "", last_sample);
            }
            printf("]}\n");
        } else if (strcmp(cmd, "finish") == 0 && n == 1) {
            finish_run();
            printf("{\"counts\":{\"ops\":%lu,\"powm\":%lu,\"sign\":%lu,"
                    "\"verify\":%lu,\"genkey\":%lu}", counted_ops,
                    counted.powm, counted.sign, counted.verify, counted.genkey);
            if (is("sessions"))
                printf(",\"heap_per_session\":%.1f,\"rss_per_session\":%.1f",
                        heap_per_session, rss_per_session);
            printf("}\n");
            run.name = NULL;
        } else {
            die("bad command: %s", line);
        }
        fflush(stdout);
    }
    if (alice.us) otrl_userstate_free(alice.us);
    if (bob.us) otrl_userstate_free(bob.us);
    return 0;
}
