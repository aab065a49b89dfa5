/* Threads: 16 threads add to one counter under a mutex, hand a token round
 * through a condition variable, and are joined; prints the totals. */
#include <pthread.h>
#include <stdio.h>

#define THREADS 16
#define ROUNDS 100000

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t turn_changed = PTHREAD_COND_INITIALIZER;
static long counter;
static int turn, passes;

static void *work(void *arg) {
	int me = (int)(long)arg;
	for (int i = 0; i < ROUNDS; i++) {
		pthread_mutex_lock(&lock);
		counter++;
		pthread_mutex_unlock(&lock);
	}
	/* The token goes round the threads in order, three times. */
	for (int r = 0; r < 3; r++) {
		pthread_mutex_lock(&lock);
		while (turn != me)
			pthread_cond_wait(&turn_changed, &lock);
		passes++;
		turn = (turn + 1) % THREADS;
		pthread_cond_broadcast(&turn_changed);
		pthread_mutex_unlock(&lock);
	}
	return (void *)(long)(me * 2);
}

int main(void) {
	pthread_t t[THREADS];
	for (long i = 0; i < THREADS; i++)
		if (pthread_create(&t[i], NULL, work, (void *)i) != 0)
			return 1;
	long sum = 0;
	for (int i = 0; i < THREADS; i++) {
		void *r;
		pthread_join(t[i], &r);
		sum += (long)r;
	}
	printf("counter %ld passes %d joined %ld\n", counter, passes, sum);
	return 0;
}
