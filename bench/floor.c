/* The kernel's part of a fan-out, alone: see bench/floor.py, which builds and runs this.
 *
 *   floor read FD...            read every inherited UDP socket (epoll) until stdin closes,
 *                               then print how many datagrams arrived
 *   floor send SIZE PACKETS GAP_US PORT...
 *                               PACKETS times: one sendmmsg of a SIZE-byte datagram to each
 *                               127.0.0.1 PORT, then GAP_US of sleep; print the CPU time of
 *                               the sends in microseconds per datagram
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_PORTS 4096
#define MAX_SIZE 1500
#define EVENTS 256

static int reader(int count, char **fds)
{
    int poll = epoll_create1(0);
    struct epoll_event event = {.events = EPOLLIN, .data.fd = STDIN_FILENO};
    epoll_ctl(poll, EPOLL_CTL_ADD, STDIN_FILENO, &event);
    for (int i = 0; i < count; i++) {
        event.data.fd = atoi(fds[i]);
        if (epoll_ctl(poll, EPOLL_CTL_ADD, event.data.fd, &event) < 0) {
            perror("epoll_ctl");
            return 1;
        }
    }
    char buffer[2048];
    long long received = 0;
    for (;;) {
        struct epoll_event ready[EVENTS];
        int n = epoll_wait(poll, ready, EVENTS, -1);
        for (int i = 0; i < n; i++) {
            if (ready[i].data.fd == STDIN_FILENO) {
                printf("%lld\n", received);
                return 0;
            }
            while (recv(ready[i].data.fd, buffer, sizeof buffer, MSG_DONTWAIT) > 0)
                received++;
        }
    }
}

static double cpu_seconds(void)
{
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    return (double)(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
           (double)(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) * 1e-6;
}

static int sender(int size, int packets, int gap_us, int count, char **ports)
{
    static char payload[MAX_PORTS][MAX_SIZE];
    static struct sockaddr_in addresses[MAX_PORTS];
    static struct iovec vectors[MAX_PORTS];
    static struct mmsghdr messages[MAX_PORTS];
    int sock = socket(AF_INET, SOCK_DGRAM, 0);
    for (int i = 0; i < count; i++) {
        addresses[i].sin_family = AF_INET;
        addresses[i].sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        addresses[i].sin_port = htons((uint16_t)atoi(ports[i]));
        vectors[i].iov_base = payload[i];
        vectors[i].iov_len = (size_t)size;
        messages[i].msg_hdr.msg_name = &addresses[i];
        messages[i].msg_hdr.msg_namelen = sizeof(addresses[i]);
        messages[i].msg_hdr.msg_iov = &vectors[i];
        messages[i].msg_hdr.msg_iovlen = 1;
    }
    double spent = 0;
    long long sent = 0;
    for (int k = 0; k < packets; k++) {
        double started = cpu_seconds();
        for (int done = 0; done < count;) {
            int n = sendmmsg(sock, messages + done, (unsigned int)(count - done), 0);
            if (n <= 0)
                break;
            done += n;
            sent += n;
        }
        spent += cpu_seconds() - started;
        usleep((useconds_t)gap_us);
    }
    printf("%.4f %lld\n", sent ? spent / (double)sent * 1e6 : 0.0, sent);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 3 && strcmp(argv[1], "read") == 0)
        return reader(argc - 2, argv + 2);
    if (argc >= 6 && strcmp(argv[1], "send") == 0 && argc - 5 <= MAX_PORTS) {
        int size = atoi(argv[2]);
        if (size < 1 || size > MAX_SIZE) {
            fprintf(stderr, "SIZE must be 1-%d\n", MAX_SIZE);
            return 2;
        }
        return sender(size, atoi(argv[3]), atoi(argv[4]), argc - 5, argv + 5);
    }
    fprintf(stderr, "usage: floor read FD... | floor send SIZE PACKETS GAP_US PORT...\n");
    return 2;
}
