/* pyprof.bpf.c: the process tracker, and (built with -DPYPROF_SAMPLER=1) the sampler.
 *
 * One file because bcc turns only the main file's functions into programs and rewrites map
 * accesses only there; audit loads the tracker part, record loads both (sharing the tracked
 * map, which decides whose samples are taken).
 *
 * TRACKER: exact process-tree membership, decided in the kernel at fork time.
 *
 * The tracked map (tgid -> struct member) IS the membership. A new thread group whose
 * creator is tracked is inserted inside sched_process_fork, which runs in the parent after
 * copy_process() and before wake_up_new_task() (kernel/fork.c, kernel_clone), so the child
 * cannot run, fork or exec before it is a member. Reparenting, setsid, double forks and new
 * pid namespaces never remove a member; only its group-dead exit does.
 *
 * Every kernel struct is read at an offset taken from BTF (OFF_* from -D, see loader.py):
 * the header tree bcc compiles against may belong to another kernel. Events go through one
 * ring buffer, which keeps causal order (a fork is reserved before the child can run); each
 * carries a sequence number taken before the reservation, so a failed reservation leaves a
 * visible gap, and failed reservations are counted.
 */
#include "pyprof.h"

#ifndef MAX_TRACKED
#define MAX_TRACKED 32768
#endif
#ifndef RING_PAGES
#define RING_PAGES 1024
#endif
#ifndef WALK_DEPTH
#define WALK_DEPTH 24
#endif
#ifndef CGROUP_V1_SUBSYS
#define CGROUP_V1_SUBSYS -1
#endif

BPF_HASH(tracked, u32, struct member, MAX_TRACKED);
BPF_RINGBUF_OUTPUT(events, RING_PAGES);
BPF_ARRAY(counters, u64, PYPROF_NCOUNTERS);
BPF_ARRAY(config, struct tracker_config, 1);
BPF_CGROUP_ARRAY(cgroup_filter, 1);

#ifndef PYPROF_SAMPLER
#define PYPROF_SAMPLER 0
#endif

#if PYPROF_SAMPLER
/* Sampler maps and the tracker's hooks into them (see the SAMPLER part below). */
#ifndef SAMPLE_RING_PAGES
#define SAMPLE_RING_PAGES 1024
#endif
#ifndef CODE_CACHE
#define CODE_CACHE 16384
#endif
#ifndef MAX_THREADS
#define MAX_THREADS 64
#endif
#ifndef MAX_NEW_CODES
#define MAX_NEW_CODES 8        /* code objects captured per sample; the rest next time */
#endif
#ifndef NATIVE_STACKS
#define NATIVE_STACKS 0
#endif
#ifndef KERNEL_STACKS
#define KERNEL_STACKS 0
#endif

struct tkey {
	u32 tgid;
	u32 _pad;
	u64 fsbase;
};

BPF_HASH(py_procs, u32, struct py_proc, MAX_TRACKED);
BPF_TABLE("lru_hash", struct tkey, u64, tstate_cache, 8192);
BPF_TABLE("lru_hash", struct code_key, struct code_info, code_infos, CODE_CACHE);
BPF_PERCPU_ARRAY(sample_scratch, struct sample, 1);
BPF_PERCPU_ARRAY(code_scratch, struct code_info, 1);
BPF_RINGBUF_OUTPUT(samples, SAMPLE_RING_PAGES);
BPF_ARRAY(sample_counters, u64, 4);     /* 0 taken, 1 ring drops, 2 code captures */
#if NATIVE_STACKS || KERNEL_STACKS
BPF_STACK_TRACE(stacks, 16384);
#endif

static __always_inline u64 current_fsbase(void)
{
	u64 fs = 0;
	void *task = (void *)bpf_get_current_task();
	bpf_probe_read_kernel(&fs, sizeof(fs), (char *)task + OFF_TASK_THREAD_FSBASE);
	return fs;
}

/* Hooks called by the tracker (tracker.bpf.c). */
static __always_inline void sampler_on_fork(u32 ptgid, u32 ctgid)
{
	struct py_proc *c = py_procs.lookup(&ptgid);
	if (c) {
		struct py_proc copy = *c;   /* fork copies the address space: same layout */
		py_procs.update(&ctgid, &copy);
	}
}

static __always_inline void sampler_on_exec(u32 tgid)
{
	py_procs.delete(&tgid);
}

static __always_inline void sampler_on_thread_exit(u32 tgid, int group_dead)
{
	struct tkey k = {.tgid = tgid, .fsbase = current_fsbase()};
	tstate_cache.delete(&k);
	if (group_dead)
		py_procs.delete(&tgid);
}

#endif /* PYPROF_SAMPLER */

/* User-memory reads go through our own pointers to the helpers rather than bcc's
 * bpf_probe_read_user{,_str}: bcc's frontend (b_frontend_action.cc,
 * check_bpf_probe_read_user) looks the helper up in the kernel's symbols at every call
 * site it rewrites, about 28 ms each here, which was most of the start-up. The helpers
 * exist on every kernel we load on (5.5+; the ring buffer already needs 5.8). */
static long (*read_user)(void *dst, u32 size, const void *src) =
	(void *)BPF_FUNC_probe_read_user;
static long (*read_user_str)(void *dst, u32 size, const void *src) =
	(void *)BPF_FUNC_probe_read_user_str;

#define RD(dst, base, off) bpf_probe_read_kernel(&(dst), sizeof(dst), (void *)((char *)(base) + (off)))

static __always_inline void count(u32 slot)
{
	u64 *n = counters.lookup(&slot);
	if (n)
		__sync_fetch_and_add(n, 1);
}

static __always_inline u64 next_seq(void)
{
	u32 slot = PYPROF_CNT_SEQ;
	u64 *n = counters.lookup(&slot);
	return n ? __sync_fetch_and_add(n, 1) : 0;
}

static __always_inline u32 task_tgid(void *task)
{
	u32 v = 0;
	RD(v, task, OFF_TASK_TGID);
	return v;
}

static __always_inline void *task_ptr(void *task, int off)
{
	void *p = 0;
	bpf_probe_read_kernel(&p, sizeof(p), (char *)task + off);
	return p;
}

/* Identity of a process: its leader's start_boottime (ns), fixed at fork, kept by exec. */
static __always_inline u64 process_start(void *task)
{
	u64 v = 0;
	void *leader = task_ptr(task, OFF_TASK_GROUP_LEADER);
	RD(v, leader ? leader : task, OFF_TASK_START_BOOTTIME);
	return v;
}

/* kernfs id of `task`'s cgroup in the v1 hierarchy of controller CGROUP_V1_SUBSYS:
 * task->cgroups->subsys[i]->cgroup->kn->id (include/linux/cgroup-defs.h). */
static __always_inline u64 cgroup_v1_id(void *task)
{
#if CGROUP_V1_SUBSYS >= 0 && defined(OFF_TASK_CGROUPS) && defined(OFF_KN_ID)
	void *cset = task_ptr(task, OFF_TASK_CGROUPS);
	void *css = cset ? task_ptr(cset, OFF_CSS_SET_SUBSYS + 8 * CGROUP_V1_SUBSYS) : 0;
	void *cgrp = css ? task_ptr(css, OFF_CSS_CGROUP) : 0;
	void *kn = cgrp ? task_ptr(cgrp, OFF_CGROUP_KN) : 0;
	u64 id = 0;
	if (kn)
		RD(id, kn, OFF_KN_ID);
	return id;
#else
	return 0;
#endif
}

/* Is the current task in the configured cgroup (or below it)? */
static __always_inline int in_cgroup(struct tracker_config *cfg)
{
	if (!cfg->cgroup_v1_id)
		return cgroup_filter.check_current_task(0) == 1;
#if CGROUP_V1_SUBSYS >= 0 && defined(OFF_TASK_CGROUPS) && defined(OFF_KN_ID) && defined(OFF_KN_PARENT)
	void *task = (void *)bpf_get_current_task();
	void *cset = task_ptr(task, OFF_TASK_CGROUPS);
	void *css = cset ? task_ptr(cset, OFF_CSS_SET_SUBSYS + 8 * CGROUP_V1_SUBSYS) : 0;
	void *cgrp = css ? task_ptr(css, OFF_CSS_CGROUP) : 0;
	void *kn = cgrp ? task_ptr(cgrp, OFF_CGROUP_KN) : 0;
#pragma unroll
	for (int i = 0; i < 8; i++) {
		if (!kn)
			return 0;
		u64 id = 0;
		RD(id, kn, OFF_KN_ID);
		if (id == cfg->cgroup_v1_id)
			return 1;
		kn = task_ptr(kn, OFF_KN_PARENT);
	}
#endif
	return 0;
}

/* Bootstrap: does `task` descend from a tracked process? Walks real_parent, which only
 * sees the current chain: descendants orphaned before attach are invisible (as in /proc). */
static __always_inline struct member *tracked_ancestor(void *task)
{
	void *t = task;
#pragma unroll
	for (int i = 0; i < WALK_DEPTH; i++) {
		t = task_ptr(t, OFF_TASK_REAL_PARENT);
		if (!t)
			return 0;
		u32 tgid = task_tgid(t);
		if (tgid <= 1)
			return 0;
		struct member *m = tracked.lookup(&tgid);
		if (m)
			return m;
	}
	return 0;
}

/* Should an untracked current task's new child (or exec) be tracked? */
static __always_inline int in_scope(struct tracker_config *cfg, void *task, u32 *flags)
{
	if (cfg->scope == PYPROF_SCOPE_ALL)
		return 1;
	if (cfg->scope == PYPROF_SCOPE_CGROUP && in_cgroup(cfg))
		return 1;
	if (cfg->bootstrap && tracked_ancestor(task)) {
		*flags |= PYPROF_EVF_VIA_WALK;
		return 1;
	}
	return 0;
}

static __always_inline void fill(struct proc_event *e, u64 seq, u32 kind, u32 tgid, u64 start)
{
	e->seq = seq;
	e->ts = bpf_ktime_get_boot_ns();
	e->kind = kind;
	e->tgid = tgid;
	e->start = start;
	e->cgroup_id = bpf_get_current_cgroup_id();
	e->uid = (u32)bpf_get_current_uid_gid();
}

/* raw_tp/sched_process_fork (struct task_struct *parent, struct task_struct *child):
 * fires for threads too; only a new thread group is a process. */
int on_fork(struct bpf_raw_tracepoint_args *ctx)
{
	void *child = (void *)ctx->args[1];
	u64 pid_tgid = bpf_get_current_pid_tgid();
	u32 ptgid = pid_tgid >> 32;
	u32 ctgid = task_tgid(child);
	if (ctgid == ptgid)
		return 0;

	u32 zero = 0, flags = 0;
	u64 pstart;
	struct member *pm = tracked.lookup(&ptgid);
	if (pm) {
		pstart = pm->start;
	} else {
		struct tracker_config *cfg = config.lookup(&zero);
		void *cur = (void *)bpf_get_current_task();
		if (!cfg || !in_scope(cfg, cur, &flags))
			return 0;
		if (flags & PYPROF_EVF_VIA_WALK)
			count(PYPROF_CNT_WALK_FORKS);
		pstart = process_start(cur);
	}

	struct member m = {};
	RD(m.start, child, OFF_TASK_START_BOOTTIME);
	m.ptgid = ptgid;
	if (tracked.update(&ctgid, &m))
		count(PYPROF_CNT_MAP_FULL);  /* never silent: exactness is lost and reported */
#if PYPROF_SAMPLER
	sampler_on_fork(ptgid, ctgid);
#endif

	u64 seq = next_seq();
	struct proc_event *e = events.ringbuf_reserve(sizeof(struct proc_event));
	if (!e) {
		count(PYPROF_CNT_RB_DROPS);
		return 0;
	}
	fill(e, seq, PYPROF_EV_FORK, ctgid, m.start);
	e->pstart = pstart;
	e->ptgid = ptgid;
	e->tid = (u32)pid_tgid;
	e->old_pid = 0;
	e->status = 0;
	e->flags = flags;
	e->cgroup_v1_id = cgroup_v1_id(child);
	bpf_probe_read_kernel(e->comm, sizeof(e->comm), (char *)child + OFF_TASK_COMM);
	events.ringbuf_submit(e, 0);
	return 0;
}

/* raw_tp/sched_process_exec (struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm):
 * runs after de_thread(), so current is the leader (tid == tgid) and the new image's
 * mm->arg_start..arg_end hold argv (fs/exec.c). */
int on_exec(struct bpf_raw_tracepoint_args *ctx)
{
	u64 pid_tgid = bpf_get_current_pid_tgid();
	u32 tgid = pid_tgid >> 32, zero = 0, flags = 0;
	void *cur = (void *)bpf_get_current_task();
	struct member *m = tracked.lookup(&tgid);
	u64 start;
	if (m) {
		start = m->start;
	} else {
		/* A process that joins the scope later (moved into the cgroup) becomes a member
		 * at its next exec; tree scope never adds processes here. */
		struct tracker_config *cfg = config.lookup(&zero);
		if (!cfg || cfg->scope == PYPROF_SCOPE_TREE || !in_scope(cfg, cur, &flags))
			return 0;
		struct member nm = {};
		nm.start = start = process_start(cur);
		if (tracked.update(&tgid, &nm))
			count(PYPROF_CNT_MAP_FULL);
	}

#if PYPROF_SAMPLER
	sampler_on_exec(tgid);
#endif
	u64 seq = next_seq();
	struct exec_event *e = events.ringbuf_reserve(sizeof(struct exec_event));
	if (!e) {
		count(PYPROF_CNT_RB_DROPS);
		return 0;
	}
	fill(&e->hdr, seq, PYPROF_EV_EXEC, tgid, start);
	e->hdr.pstart = 0;
	e->hdr.tid = (u32)pid_tgid;
	e->hdr.old_pid = (u32)ctx->args[1];
	e->hdr.status = 0;
	e->hdr.cgroup_v1_id = cgroup_v1_id(cur);
	void *parent = task_ptr(cur, OFF_TASK_REAL_PARENT);
	e->hdr.ptgid = parent ? task_tgid(parent) : 0;
	bpf_get_current_comm(e->hdr.comm, sizeof(e->hdr.comm));

	void *bprm = (void *)ctx->args[2];
	const char *fname = task_ptr(bprm, OFF_BPRM_FILENAME);
	int n = bpf_probe_read_kernel_str(e->filename, sizeof(e->filename), fname);
	e->filename_len = n > 0 ? n - 1 : 0;
	if (n >= (int)sizeof(e->filename))
		flags |= PYPROF_EVF_FILENAME_TRUNCATED;

	u64 arg_start = 0, arg_end = 0;
	void *mm = task_ptr(cur, OFF_TASK_MM);
	if (mm) {
		RD(arg_start, mm, OFF_MM_ARG_START);
		RD(arg_end, mm, OFF_MM_ARG_END);
	}
	u64 len = arg_end > arg_start ? arg_end - arg_start : 0;
	if (len > PYPROF_ARGV_LEN) {
		len = PYPROF_ARGV_LEN;
		flags |= PYPROF_EVF_ARGV_TRUNCATED;
	}
	e->argv_len = 0;
	if (len > 0) {
		len &= (PYPROF_ARGV_LEN * 2 - 1);   /* bound for the verifier: len <= PYPROF_ARGV_LEN */
		if (len <= PYPROF_ARGV_LEN && read_user(e->argv, len, (void *)arg_start) == 0)
			e->argv_len = len;
		else
			flags |= PYPROF_EVF_ARGV_UNREADABLE;
	}
	e->hdr.flags = flags;
	events.ringbuf_submit(e, 0);
	return 0;
}

/* raw_tp/sched_process_exit (struct task_struct *p[, bool group_dead]): fires for every
 * thread. A process dies at the exit that drops signal->live to zero: the group_dead
 * argument since 6.16 (commit 3e816361e94a), signal->live == 0 before (do_exit decrements
 * it before the tracepoint). That exit may come from a non-leader thread. */
int on_exit(struct bpf_raw_tracepoint_args *ctx)
{
	void *task = (void *)ctx->args[0];
	u64 pid_tgid = bpf_get_current_pid_tgid();
	u32 tgid = pid_tgid >> 32, flags = 0;
	void *sig = task_ptr(task, OFF_TASK_SIGNAL);
#if HAVE_GROUP_DEAD
	int group_dead = (int)(ctx->args[1] & 1);
#else
	int live = 1;
	if (sig)
		RD(live, sig, OFF_SIGNAL_LIVE);
	int group_dead = live == 0;
	flags |= PYPROF_EVF_NO_GROUP_DEAD;
#endif
#if PYPROF_SAMPLER
	sampler_on_thread_exit(tgid, group_dead);
#endif
	if (!group_dead)
		return 0;

	struct member *m = tracked.lookup(&tgid);
	u64 start;
	if (m) {
		start = m->start;
	} else {
		u32 zero = 0;
		struct tracker_config *cfg = config.lookup(&zero);
		if (!cfg || !cfg->bootstrap || !tracked_ancestor(task))
			return 0;
		flags |= PYPROF_EVF_VIA_WALK;
		count(PYPROF_CNT_WALK_EXITS);
		start = process_start(task);
	}

	/* wait_task_zombie() (kernel/exit.c) reports signal->group_exit_code when
	 * SIGNAL_GROUP_EXIT is set, else the leader's exit_code: report exactly that. */
	u32 sflags = 0, status = 0;
	if (sig) {
		RD(sflags, sig, OFF_SIGNAL_FLAGS);
	}
	if (sig && (sflags & SIGNAL_GROUP_EXIT)) {
		RD(status, sig, OFF_SIGNAL_GROUP_EXIT_CODE);
	} else {
		void *leader = task_ptr(task, OFF_TASK_GROUP_LEADER);
		RD(status, leader ? leader : task, OFF_TASK_EXIT_CODE);
	}

	u64 seq = next_seq();
	struct proc_event *e = events.ringbuf_reserve(sizeof(struct proc_event));
	if (e) {
		fill(e, seq, PYPROF_EV_EXIT, tgid, start);
		e->pstart = 0;
		e->tid = (u32)pid_tgid;
		e->old_pid = 0;
		e->status = status;
		e->flags = flags;
		e->cgroup_v1_id = 0;
		void *parent = task_ptr(task, OFF_TASK_REAL_PARENT);
		e->ptgid = parent ? task_tgid(parent) : 0;
		bpf_get_current_comm(e->comm, sizeof(e->comm));
		events.ringbuf_submit(e, 0);
	} else {
		count(PYPROF_CNT_RB_DROPS);
	}
	if (m)
		tracked.delete(&tgid);
	return 0;
}


#if PYPROF_SAMPLER
/* SAMPLER: cpu-clock samples of tracked processes, with their CPython frames.
 *
 * Built on the tracker above: the tracked map decides whose samples are taken,
 * and the tracker's fork/exec/exit hooks keep the per-process CPython layout (py_procs) in
 * step: a forked child inherits its parent's layout inside the fork tracepoint, an exec
 * drops it (user space describes the new image), an exit removes it.
 *
 * The walk never branches on a Python version: every offset and behaviour switch comes from
 * struct py_proc (filled by pyprof_ebpf.cpython from per-version tables or the target's own
 * _Py_DebugOffsets). The sampled task is current on this CPU, so its frames cannot change
 * under us; every read is bounded and a failed read ends the walk with a flag, never a crash.
 *
 * Thread state: walk the interpreter's thread list for the PyThreadState whose thread_id
 * (pthread_self(), which is the FS base on x86-64 glibc and musl) equals the task's
 * thread.fsbase (cpython-frames.md section 4). Works for threads without the GIL.
 */
#define RDU(dst, addr) read_user(&(dst), sizeof(dst), (void *)(addr))

static __always_inline void scount(u32 slot)
{
	u64 *n = sample_counters.lookup(&slot);
	if (n)
		__sync_fetch_and_add(n, 1);
}

static __always_inline u64 find_tstate(struct py_proc *c, u32 tgid)
{
	u64 fs = current_fsbase();
	struct tkey k = {.tgid = tgid, .fsbase = fs};
	u64 *hit = tstate_cache.lookup(&k);
	u64 tid = 0;
	if (hit) {
		u64 ts = *hit;
		if (RDU(tid, ts + c->PyThreadState_thread_id) == 0 && tid == fs)
			return ts;
	}
	u64 interp = 0, cur = 0;
	if (RDU(interp, c->runtime + c->PyRuntimeState_interpreters_head) || !interp)
		return 0;
	if (RDU(cur, interp + c->PyInterpreterState_threads_head))
		return 0;
	for (int i = 0; i < MAX_THREADS; i++) {
		if (!cur)
			break;
		tid = 0;
		if (RDU(tid, cur + c->PyThreadState_thread_id))
			break;
		if (tid == fs) {
			tstate_cache.update(&k, &cur);
			return cur;
		}
		u64 next = 0;
		if (RDU(next, cur + c->PyThreadState_next))
			break;
		cur = next;
	}
	return 0;
}

/* Copy a PEP 393 compact string: ASCII with the _str helper (NUL-terminated in memory),
 * otherwise the raw code units (kind 1/2/4) for user space to decode. */
#define READ_PYSTR(c, str, dst, cap, len_out, kind_out)                                     \
	do {                                                                                \
		u32 state = 0;   /* locals end in _ or are distinct: len_out may be "n" */   \
		s64 length = 0;                                                             \
		len_out = 0;                                                                \
		kind_out = 0;                                                               \
		if (!(str) || RDU(state, (str) + (c)->PyASCIIObject_state) ||                  \
		    RDU(length, (str) + (c)->PyASCIIObject_length))                            \
			break;                                                              \
		u32 kind = (state >> (c)->unicode_kind_shift) & 7;                          \
		if (!((state >> (c)->unicode_compact_bit) & 1))                             \
			break;                                                              \
		if ((state >> (c)->unicode_ascii_bit) & 1) {                                \
			int got_ = read_user_str(dst, cap, (void *)((str) + (c)->PyASCIIObject_size)); \
			if (got_ > 0) {                                                     \
				len_out = got_ - 1;                                         \
				kind_out = 1;                                               \
			}                                                                   \
			break;                                                              \
		}                                                                           \
		if (kind != 1 && kind != 2 && kind != 4)                                    \
			break;                                                              \
		u64 bytes = (u64)length * kind;                                             \
		if (bytes > cap)                                                            \
			bytes = cap;                                                        \
		bytes &= (cap * 2 - 1);                                                     \
		if (bytes > cap)                                                            \
			break;                                                              \
		if (bytes && read_user(dst, bytes,                                          \
				(void *)((str) + (c)->PyCompactUnicodeObject_size)) == 0) { \
			len_out = bytes;                                                    \
			kind_out = kind;                                                    \
		}                                                                           \
	} while (0)

static __always_inline void capture_code(struct py_proc *c, struct code_key *key)
{
	u32 zero = 0;
	struct code_info *ci = code_scratch.lookup(&zero);
	if (!ci)
		return;
	u64 code = key->code;
	ci->firstlineno = 0;
	ci->linetable_len = 0;
	RDU(ci->firstlineno, code + c->PyCodeObject_co_firstlineno);

	u64 name = 0, file = 0, lt = 0;
	RDU(name, code + c->PyCodeObject_co_name);
	RDU(file, code + c->PyCodeObject_co_filename);
	u32 n = 0, k = 0;
	READ_PYSTR(c, name, ci->name, PYPROF_NAME_LEN, n, k);
	ci->name_len = n;
	ci->name_kind = k;
	READ_PYSTR(c, file, ci->file, PYPROF_FILE_LEN, n, k);
	ci->file_len = n;
	ci->file_kind = k;

	s64 size = 0;
	if (RDU(lt, code + c->PyCodeObject_co_linetable) == 0 && lt &&
	    RDU(size, lt + c->PyBytesObject_ob_size) == 0 && size > 0) {
		ci->linetable_len = size > 0xFFFFFF ? 0xFFFFFF : (u32)size;
		u64 copy = size > PYPROF_LINETABLE_LEN ? PYPROF_LINETABLE_LEN : (u64)size;
		copy &= (PYPROF_LINETABLE_LEN * 2 - 1);
		if (copy <= PYPROF_LINETABLE_LEN && copy > 0)
			read_user(ci->linetable, copy, (void *)(lt + c->PyBytesObject_ob_sval));
	}
	code_infos.update(key, ci);
	scount(2);
}

/* The walk is split across tail calls (walk_frames re-enters itself, FRAMES_PER_CALL frames
 * each time) so each program stays small for the verifier; state lives in per-CPU scratch. */
#define FRAMES_PER_CALL 16
#define PROG_WALK 0
#define PROG_FINISH 1
#define PROG_CAPTURE 2

struct walk_state {
	u64 frame;          /* next frame to read */
	u32 capture_from;   /* next frame index to check for a missing code_info */
	u32 budget;         /* code objects still allowed to be captured by this sample */
};

BPF_PROG_ARRAY(progs, 4);
BPF_PERCPU_ARRAY(wake_count, u64, 1);
#ifndef WAKE_EVERY
#define WAKE_EVERY 64
#endif

/* An index the verifier can see is in bounds: the empty asm hides the value from clang,
 * which would otherwise drop the mask after an earlier n < MAX check. */
static __always_inline u32 bounded_index(u32 i)
{
	asm volatile("" : "+r"(i));
	return i & (PYPROF_MAX_FRAMES - 1);
}
BPF_PERCPU_ARRAY(walk_scratch, struct walk_state, 1);

int on_sample(struct bpf_perf_event_data *ctx)
{
	u64 pid_tgid = bpf_get_current_pid_tgid();
	u32 tgid = pid_tgid >> 32, zero = 0;
	if (!tgid)
		return 0;                       /* the idle task */
	struct member *m = tracked.lookup(&tgid);
	if (!m)
		return 0;
	struct sample *s = sample_scratch.lookup(&zero);
	struct walk_state *w = walk_scratch.lookup(&zero);
	if (!s || !w)
		return 0;
	s->ts = bpf_ktime_get_boot_ns();
	s->start = m->start;
	s->pid = tgid;
	s->tid = (u32)pid_tgid;
	s->cpu = bpf_get_smp_processor_id();
	s->flags = 0;
	s->nframes = 0;
#if NATIVE_STACKS
	s->user_stack_id = stacks.get_stackid(ctx, BPF_F_USER_STACK);
#else
	s->user_stack_id = -1;
#endif
#if KERNEL_STACKS
	s->kernel_stack_id = stacks.get_stackid(ctx, 0);
#else
	s->kernel_stack_id = -1;
#endif
	w->frame = 0;
	w->capture_from = 0;
	w->budget = MAX_NEW_CODES;
	scount(0);

	struct py_proc *c = py_procs.lookup(&tgid);
	if (!c) {
		s->flags |= PYPROF_SF_NO_CONFIG;
		progs.call(ctx, PROG_FINISH);
		return 0;
	}
	u64 ts = find_tstate(c, tgid);
	u64 f = 0;
	if (!ts) {
		s->flags |= PYPROF_SF_NO_TSTATE;
	} else if (RDU(f, ts + c->tstate_frame)) {
		s->flags |= PYPROF_SF_READ_ERROR;
		f = 0;
	} else if (c->_PyCFrame_current_frame >= 0 && f) {
		u64 cf = f;
		f = 0;
		if (RDU(f, cf + c->_PyCFrame_current_frame))
			s->flags |= PYPROF_SF_READ_ERROR;
	}
	w->frame = f;
	progs.call(ctx, f ? PROG_WALK : PROG_FINISH);
	return 0;
}

/* Where every tail-called part of a sample resumes: this CPU's sample and walk state, and
 * the sampled process's layout (NULL when any is missing). */
static __always_inline struct py_proc *resume(struct sample **s, struct walk_state **w)
{
	u32 zero = 0;
	*s = sample_scratch.lookup(&zero);
	*w = walk_scratch.lookup(&zero);
	if (!*s || !*w)
		return 0;
	u32 tgid = (*s)->pid;
	return py_procs.lookup(&tgid);
}

int walk_frames(struct bpf_perf_event_data *ctx)
{
	struct sample *s;
	struct walk_state *w;
	struct py_proc *c = resume(&s, &w);
	if (!c)
		return 0;
	u64 f = w->frame;
	u32 n = s->nframes;
	for (int i = 0; i < FRAMES_PER_CALL; i++) {
		if (!f || n >= PYPROF_MAX_FRAMES)
			break;
		u64 prev = 0;
		if (RDU(prev, f + c->frame_previous) || prev == f) {
			s->flags |= PYPROF_SF_READ_ERROR;
			f = 0;
			break;
		}
		if (c->frame_owner >= 0) {
			u8 owner = 0;
			RDU(owner, f + c->frame_owner);
			if (owner >= c->owner_skip_min) {   /* C-stack/interpreter entry shim */
				f = prev;
				continue;
			}
		}
		u64 code = 0, type = 0;
		if (RDU(code, f + c->frame_code)) {
			s->flags |= PYPROF_SF_READ_ERROR;
			f = 0;
			break;
		}
		code &= c->code_ptr_mask;
		if (!code || RDU(type, code + c->PyObject_ob_type) || type != c->pycode_type) {
			f = prev;                           /* not a code object (3.13+ None) */
			continue;
		}
		s32 first = 0;
		u64 lt = 0;
		RDU(first, code + c->PyCodeObject_co_firstlineno);
		RDU(lt, code + c->PyCodeObject_co_linetable);
		s64 addrq = -1;
		if (c->instr_kind == 2) {
			u64 ip = 0;
			if (RDU(ip, f + c->frame_instr) == 0)
				addrq = (s64)(ip - (code + c->PyCodeObject_co_code_adaptive));
		} else {
			s32 lasti = -1;
			RDU(lasti, f + c->frame_instr);
			addrq = (c->instr_kind == 1 && lasti >= 0) ? 2 * (s64)lasti : lasti;
		}
		u32 idx = bounded_index(n);
		s->frames[idx].code = code;
		s->frames[idx].addrq = addrq > 0x7FFFFFFF ? 0x7FFFFFFF : (addrq < -0x7FFFFFFF ? -1 : (s32)addrq);
		s->frames[idx].tag = (u32)first ^ (u32)(lt >> 3);
		n++;
		f = prev;
	}
	s->nframes = n;
	w->frame = f;
	if (f && n < PYPROF_MAX_FRAMES)
		progs.call(ctx, PROG_WALK);
	if (f)
		s->flags |= PYPROF_SF_TRUNCATED;
	progs.call(ctx, PROG_FINISH);
	return 0;
}

int finish_sample(struct bpf_perf_event_data *ctx)
{
	u32 zero = 0;
	struct sample *s = sample_scratch.lookup(&zero);
	if (!s)
		return 0;
	u32 n = s->nframes;
	u64 size = sizeof(struct sample) - sizeof(s->frames) + (u64)(n & 0xFF) * sizeof(struct py_frame);
	if (size > sizeof(struct sample))
		size = sizeof(struct sample);
	/* No wakeup per sample: waking the profiler at every sample preempts the target on a
	 * busy host (and biases CPU accounting). User space drains this ring at each poll
	 * timeout; every WAKE_EVERY-th sample of a CPU wakes it, which bounds the backlog. */
	u64 flags = BPF_RB_NO_WAKEUP;
	u64 *since = wake_count.lookup(&zero);
	if (since && ++(*since) >= WAKE_EVERY) {
		*since = 0;
		flags = BPF_RB_FORCE_WAKEUP;
	}
	if (samples.ringbuf_output(s, size, flags))
		scount(1);
	if (n)
		progs.call(ctx, PROG_CAPTURE);
	return 0;
}

/* Capture names and line tables of code objects seen for the first time (at most
 * MAX_NEW_CODES per sample; the rest on later samples of the same stack). */
int capture_codes(struct bpf_perf_event_data *ctx)
{
	struct sample *s;
	struct walk_state *w;
	struct py_proc *c = resume(&s, &w);
	if (!c)
		return 0;
	u32 i = w->capture_from;
	for (int k = 0; k < FRAMES_PER_CALL; k++, i++) {
		if (i >= s->nframes || i >= PYPROF_MAX_FRAMES)
			return 0;
		struct code_key key = {};
		u32 idx = bounded_index(i);
		key.tgid = s->pid;
		key.code = s->frames[idx].code;
		key.tag = s->frames[idx].tag;
		if (code_infos.lookup(&key))
			continue;
		if (!w->budget)
			return 0;
		w->budget--;
		w->capture_from = i + 1;
		capture_code(c, &key);
		progs.call(ctx, PROG_CAPTURE);   /* one capture per program keeps it small */
		return 0;
	}
	w->capture_from = i;
	progs.call(ctx, PROG_CAPTURE);
	return 0;
}
#endif /* PYPROF_SAMPLER */
