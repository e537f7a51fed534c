/* C-speed fork storm for the ring-overflow test (scenario 3).
 *
 *   fast_storm [N [MAX_INFLIGHT]]      defaults: 20000 children, 256 in flight
 *
 * Each child calls _exit(i % 200) at once; the parent reaps with waitpid and
 * checks every status, exiting 1 on a mismatch and 0 otherwise. A C parent
 * forks several times faster than a CPython one (no interpreter state to
 * copy), which is what makes a 1-page ring buffer overflow.
 * No ground truth is written: the test only needs the loss to be reported.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static int expected[32768 * 4 + 1];

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 20000;
    long max_inflight = argc > 2 ? atol(argv[2]) : 256;
    long inflight = 0, bad = 0;
    int status;

    for (long i = 0; i < n || inflight > 0;) {
        if (i < n && inflight < max_inflight) {
            pid_t pid = fork();
            if (pid < 0) {
                perror("fork");
                return 2;
            }
            if (pid == 0)
                _exit((int)(i % 200));
            if (pid < (pid_t)(sizeof expected / sizeof expected[0]))
                expected[pid] = (int)(i % 200);
            i++;
            inflight++;
            continue;
        }
        pid_t pid = waitpid(-1, &status, 0);
        if (pid < 0) {
            perror("waitpid");
            return 2;
        }
        inflight--;
        if (pid < (pid_t)(sizeof expected / sizeof expected[0]) &&
            !(WIFEXITED(status) && WEXITSTATUS(status) == expected[pid]))
            bad++;
    }
    if (bad)
        fprintf(stderr, "fast_storm: %ld children with an unexpected status\n", bad);
    return bad ? 1 : 0;
}
