/* tracker.bpf.c: exact process-tree membership, decided in the kernel at fork time.
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
		if (len <= PYPROF_ARGV_LEN && bpf_probe_read_user(e->argv, len, (void *)arg_start) == 0)
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
