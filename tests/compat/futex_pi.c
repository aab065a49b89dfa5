/* Priority-inheritance futexes and robust futexes: FUTEX_LOCK_PI /
 * TRYLOCK_PI / UNLOCK_PI ownership rules, hand-over to a waiter, timeouts,
 * dead owners; PI mutexes, condition variables and a barrier across 16
 * threads; robust mutexes whose owner dies (a thread, a process). */
#include "compat.h"
#include <pthread.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>

/* <linux/futex.h>'s values (musl's compiler has no kernel headers). */
#define FUTEX_WAIT 0
#define FUTEX_WAKE 1
#define FUTEX_CMP_REQUEUE 4
#define FUTEX_LOCK_PI 6
#define FUTEX_UNLOCK_PI 7
#define FUTEX_TRYLOCK_PI 8
#define FUTEX_WAITERS 0x80000000u
#define FUTEX_OWNER_DIED 0x40000000u

static long futex(uint32_t *w, int op, uint32_t val, const struct timespec *ts) {
	return raw(SYS_futex, (long)w, op, val, (long)ts, 0, 0);
}

static uint32_t tid(void) {
	return (uint32_t)raw(SYS_gettid, 0, 0, 0, 0, 0, 0);
}

static uint32_t word;
static volatile uint32_t helper_tid, helper_result = 1;
static volatile int helper_go;

static void *contender(void *arg) {
	(void)arg;
	helper_tid = tid();
	helper_result = (uint32_t)futex(&word, FUTEX_LOCK_PI, 0, NULL);
	/* Owning it now: leave it to main, which checks the word. */
	helper_go = 1;
	while (helper_go != 2)
		;
	futex(&word, FUTEX_UNLOCK_PI, 0, NULL);
	return NULL;
}

static void *holder(void *arg) {
	(void)arg;
	uint32_t z = 0;
	__atomic_compare_exchange_n(&word, &z, tid(), 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
	helper_go = 1;
	while (helper_go != 2)
		;
	return NULL;
}

/* Takes the word in user space, then ends (still owning it) once a waiter
 * has come to the kernel. */
static void *holder_exits(void *arg) {
	(void)arg;
	uint32_t z = 0;
	__atomic_compare_exchange_n(&word, &z, tid(), 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
	helper_go = 1;
	while (!(__atomic_load_n(&word, __ATOMIC_SEQ_CST) & FUTEX_WAITERS))
		;
	return NULL;
}

static void raw_pi(void) {
	word = 0;
	EXPECT("lock_pi_free", futex(&word, FUTEX_LOCK_PI, 0, NULL), 0);
	CHECK("lock_pi_owner", word == tid(), "word %#x tid %#x", word, tid());
	EXPECT("lock_pi_deadlock", futex(&word, FUTEX_LOCK_PI, 0, NULL), -EDEADLK);
	EXPECT("trylock_pi_deadlock", futex(&word, FUTEX_TRYLOCK_PI, 0, NULL), -EDEADLK);
	EXPECT("unlock_pi", futex(&word, FUTEX_UNLOCK_PI, 0, NULL), 0);
	EXPECT("unlock_pi_freed", word, 0);
	EXPECT("unlock_pi_not_owner", futex(&word, FUTEX_UNLOCK_PI, 0, NULL), -EPERM);
	EXPECT("trylock_pi_free", futex(&word, FUTEX_TRYLOCK_PI, 0, NULL), 0);
	futex(&word, FUTEX_UNLOCK_PI, 0, NULL);

	/* Hand-over: a thread waits in LOCK_PI while main owns it. */
	word = 0;
	futex(&word, FUTEX_LOCK_PI, 0, NULL);
	helper_go = 0;
	pthread_t th;
	pthread_create(&th, NULL, contender, NULL);
	for (int i = 0; i < 2000 && !(word & FUTEX_WAITERS); i++) {
		struct timespec ms = {0, 1000000};
		nanosleep(&ms, NULL);
	}
	CHECK("waiters_bit", word & FUTEX_WAITERS, "word %#x", word);
	EXPECT("unlock_hands_over", futex(&word, FUTEX_UNLOCK_PI, 0, NULL), 0);
	while (!helper_go)
		;
	/* Handed over with the waiters bit set, as Linux does. */
	CHECK("new_owner", helper_result == 0 && word == (helper_tid | FUTEX_WAITERS), "result %d word %#x helper %#x",
	      (int)helper_result, word, helper_tid);
	helper_go = 2;
	pthread_join(th, NULL);
	EXPECT("released_by_new_owner", word, 0);

	/* Owned by another thread: TRYLOCK is EAGAIN, a timed LOCK times out. */
	helper_go = 0;
	pthread_create(&th, NULL, holder, NULL);
	while (!helper_go)
		;
	EXPECT("trylock_pi_busy", futex(&word, FUTEX_TRYLOCK_PI, 0, NULL), -EAGAIN);
	struct timespec when;
	clock_gettime(CLOCK_REALTIME, &when);
	when.tv_nsec += 50000000;
	if (when.tv_nsec >= 1000000000) {
		when.tv_sec++;
		when.tv_nsec -= 1000000000;
	}
	EXPECT("lock_pi_timeout", futex(&word, FUTEX_LOCK_PI, 0, &when), -ETIMEDOUT);
	helper_go = 2;
	pthread_join(th, NULL);
	/* The holder ended without unlocking (and without a robust list
	 * entry): its id names no thread any more. */
	word = 999999;
	EXPECT("lock_pi_no_owner", futex(&word, FUTEX_LOCK_PI, 0, NULL), -ESRCH);
	/* An owner that ends while a waiter waits hands it over, with
	 * FUTEX_OWNER_DIED set (robust list or not). */
	word = 0;
	helper_go = 0;
	pthread_create(&th, NULL, holder_exits, NULL);
	while (!helper_go)
		;
	EXPECT("lock_pi_owner_exits", futex(&word, FUTEX_LOCK_PI, 0, NULL), 0);
	CHECK("owner_exit_hands_over", word == (tid() | FUTEX_WAITERS | FUTEX_OWNER_DIED), "word %#x tid %#x", word,
	      tid());
	pthread_join(th, NULL);
	EXPECT("unlock_after_owner_exit", futex(&word, FUTEX_UNLOCK_PI, 0, NULL), 0);
	EXPECT("free_after_owner_exit", word, 0);
	word = FUTEX_OWNER_DIED;
	EXPECT("lock_pi_owner_died", futex(&word, FUTEX_LOCK_PI, 0, NULL), 0);
	CHECK("owner_died_kept", word == (FUTEX_OWNER_DIED | tid()), "word %#x", word);
	word = 0;
	EXPECT("lock_pi_unaligned", futex((uint32_t *)((char *)&word + 1), FUTEX_LOCK_PI, 0, NULL), -EINVAL);
	EXPECT("lock_pi_efault", futex((uint32_t *)8, FUTEX_LOCK_PI, 0, NULL), -EFAULT);
}

#define THREADS 16
#define ROUNDS 5000

static pthread_mutex_t pim;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static pthread_barrier_t barrier;
static long counter;
static int turn, passes, after_barrier;

static void *worker(void *arg) {
	int me = (int)(long)arg;
	for (int i = 0; i < ROUNDS; i++) {
		pthread_mutex_lock(&pim);
		counter++;
		pthread_mutex_unlock(&pim);
	}
	pthread_barrier_wait(&barrier);
	__atomic_add_fetch(&after_barrier, 1, __ATOMIC_SEQ_CST);
	pthread_mutex_lock(&pim);
	while (turn != me)
		pthread_cond_wait(&cond, &pim);
	passes++;
	turn++;
	pthread_cond_broadcast(&cond);
	pthread_mutex_unlock(&pim);
	return NULL;
}

static void pi_mutexes(void) {
	pthread_mutexattr_t a;
	pthread_mutexattr_init(&a);
	EXPECT("setprotocol_inherit", pthread_mutexattr_setprotocol(&a, PTHREAD_PRIO_INHERIT), 0);
	pthread_mutex_init(&pim, &a);
	pthread_barrier_init(&barrier, NULL, THREADS);
	pthread_t t[THREADS];
	for (long i = 0; i < THREADS; i++)
		pthread_create(&t[i], NULL, worker, (void *)i);
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	CHECK("pi_mutex_counter", counter == (long)THREADS * ROUNDS, "%ld", counter);
	CHECK("barrier_and_condvar", after_barrier == THREADS && passes == THREADS, "%d %d", after_barrier, passes);
}

static pthread_mutex_t robust;

static void *die_holding(void *arg) {
	(void)arg;
	pthread_mutex_lock(&robust);
	return NULL; /* ends without unlocking */
}

static void robust_mutexes(int protocol, const char *name_thread, const char *name_process) {
	pthread_mutexattr_t a;
	pthread_mutexattr_init(&a);
	pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
	pthread_mutexattr_setprotocol(&a, protocol);
	pthread_mutex_init(&robust, &a);
	pthread_t th;
	pthread_create(&th, NULL, die_holding, NULL);
	pthread_join(th, NULL);
	int r = pthread_mutex_lock(&robust);
	CHECK(name_thread, r == EOWNERDEAD, "pthread_mutex_lock = %d", r);
	pthread_mutex_consistent(&robust);
	pthread_mutex_unlock(&robust);

	/* Across processes, in shared memory. */
	pthread_mutex_t *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
	pthread_mutex_init(m, &a);
	pid_t c = fork();
	if (c == 0) {
		pthread_mutex_lock(m);
		_exit(0);
	}
	int st;
	waitpid(c, &st, 0);
	r = pthread_mutex_lock(m);
	CHECK(name_process, r == EOWNERDEAD, "pthread_mutex_lock = %d", r);
	pthread_mutex_consistent(m);
	pthread_mutex_unlock(m);
	munmap(m, 4096);
}

static uint32_t qa, qb;
static volatile int waiting_on_a, woke;

static void *requeue_waiter(void *arg) {
	(void)arg;
	__atomic_add_fetch(&waiting_on_a, 1, __ATOMIC_SEQ_CST);
	while (futex(&qa, FUTEX_WAIT, 0, NULL) == -EINTR)
		;
	__atomic_add_fetch(&woke, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

/* FUTEX_CMP_REQUEUE moves waiters from one word to another: woken there. */
static void requeue(void) {
	pthread_t t[2];
	for (int i = 0; i < 2; i++)
		pthread_create(&t[i], NULL, requeue_waiter, NULL);
	while (waiting_on_a < 2)
		;
	struct timespec ms = {0, 50000000};
	nanosleep(&ms, NULL); /* both are in FUTEX_WAIT by now */
	EXPECT("cmp_requeue_wrong_value", raw(SYS_futex, (long)&qa, FUTEX_CMP_REQUEUE, 0, 2, (long)&qb, 1), -EAGAIN);
	EXPECT("cmp_requeue", raw(SYS_futex, (long)&qa, FUTEX_CMP_REQUEUE, 0, 2, (long)&qb, 0), 2);
	EXPECT("wake_on_a_after_requeue", futex(&qa, FUTEX_WAKE, 2, NULL), 0);
	EXPECT("wake_on_b", futex(&qb, FUTEX_WAKE, 2, NULL), 2);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	EXPECT("requeued_woke", woke, 2);
}

int main(void) {
	raw_pi();
	requeue();
	pi_mutexes();
	robust_mutexes(PTHREAD_PRIO_NONE, "robust_thread_died", "robust_process_died");
	robust_mutexes(PTHREAD_PRIO_INHERIT, "robust_pi_thread_died", "robust_pi_process_died");
	return 0;
}
