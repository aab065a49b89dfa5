/* AF_UNIX sockets: stream, datagram and seqpacket; socketpair; path and
 * abstract names; bind/listen/accept/connect and their errors; send and
 * receive flags; SCM_RIGHTS (also between processes and with the sender's
 * copy closed), SCM_CREDENTIALS with SO_PASSCRED, SO_PEERCRED; shutdown,
 * hang-ups and readiness; socket options; sendmmsg/recvmmsg.
 * argv[1] is the fixture directory (its rw/ is writable). */
#include "compat.h"
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

static const char *dir;
static char abs_base[64];

static socklen_t abstract(struct sockaddr_un *a, const char *tag) {
	memset(a, 0, sizeof *a);
	a->sun_family = AF_UNIX;
	int n = snprintf(a->sun_path + 1, sizeof a->sun_path - 1, "%s-%s", abs_base, tag);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
}

static int neg(long r) {
	return r < 0 ? -errno : (int)r;
}

static void creation(void) {
	EXPECT("bad_domain", RAW3(SYS_socket, 9999, SOCK_STREAM, 0), -EAFNOSUPPORT);
	EXPECT("bad_type", RAW3(SYS_socket, AF_UNIX, 7, 0), -ESOCKTNOSUPPORT);
	EXPECT("bad_protocol", RAW3(SYS_socket, AF_UNIX, SOCK_STREAM, 5), -EPROTONOSUPPORT);
	EXPECT("bad_type_flags", RAW3(SYS_socket, AF_UNIX, SOCK_STREAM | 0x100000, 0), -EINVAL);
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	CHECK("flags", (fcntl(s, F_GETFL) & O_NONBLOCK) && (fcntl(s, F_GETFD) & FD_CLOEXEC), "s %d", s);
	struct stat st;
	fstat(s, &st);
	CHECK("fstat_is_socket", S_ISSOCK(st.st_mode), "mode %o", st.st_mode);
	char path[64], link[64] = {0};
	snprintf(path, sizeof path, "/proc/self/fd/%d", s);
	readlink(path, link, sizeof link - 1);
	CHECK("proc_link", strncmp(link, "socket:[", 8) == 0, "%s", link);
	int v = -1;
	socklen_t l = sizeof v;
	getsockopt(s, SOL_SOCKET, SO_TYPE, &v, &l);
	CHECK("so_type", v == SOCK_STREAM && l == 4, "%d", v);
	getsockopt(s, SOL_SOCKET, SO_DOMAIN, &v, &l);
	EXPECT("so_domain", v, AF_UNIX);
	getsockopt(s, SOL_SOCKET, SO_PROTOCOL, &v, &l);
	EXPECT("so_protocol", v, 0);
	getsockopt(s, SOL_SOCKET, SO_ERROR, &v, &l);
	EXPECT("so_error", v, 0);
	getsockopt(s, SOL_SOCKET, SO_ACCEPTCONN, &v, &l);
	EXPECT("so_acceptconn_no", v, 0);
	v = 10000;
	setsockopt(s, SOL_SOCKET, SO_SNDBUF, &v, sizeof v);
	getsockopt(s, SOL_SOCKET, SO_SNDBUF, &v, &l);
	EXPECT("so_sndbuf_doubled", v, 20000);
	v = 1;
	setsockopt(s, SOL_SOCKET, SO_RCVBUF, &v, sizeof v);
	getsockopt(s, SOL_SOCKET, SO_RCVBUF, &v, &l);
	EXPECT("so_rcvbuf_minimum", v, 2304);
	EXPECT("bad_option", neg(getsockopt(s, SOL_SOCKET, 12345, &v, &l)), -ENOPROTOOPT);
	struct pollfd pf = {.fd = s, .events = POLLIN | POLLOUT};
	poll(&pf, 1, 0);
	EXPECT("fresh_stream_polls_out_hup", pf.revents, POLLOUT | POLLHUP);
	char c;
	EXPECT("read_unconnected", neg(read(s, &c, 1)), -EINVAL);
	EXPECT("write_unconnected", neg(send(s, "x", 1, MSG_NOSIGNAL)), -ENOTCONN);
	struct sockaddr_un a;
	l = sizeof a;
	getsockname(s, (struct sockaddr *)&a, &l);
	CHECK("unbound_name", l == 2 && a.sun_family == AF_UNIX, "len %u", l);
	l = sizeof a;
	EXPECT("peername_enotconn", neg(getpeername(s, (struct sockaddr *)&a, &l)), -ENOTCONN);
	EXPECT("listen_unbound", neg(listen(s, 1)), -EINVAL);
	EXPECT("accept_not_listening", neg(accept(s, NULL, NULL)), -EINVAL);
	int p[2];
	pipe(p);
	EXPECT("not_a_socket", neg(getsockname(p[0], (struct sockaddr *)&a, &l)), -ENOTSOCK);
	close(p[0]), close(p[1]), close(s);
	int d = socket(AF_UNIX, SOCK_DGRAM, 0);
	EXPECT("listen_dgram", neg(listen(d, 1)), -EOPNOTSUPP);
	close(d);
}

static void pairs(void) {
	int sv[2];
	EXPECT("socketpair_stream", socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	write(sv[0], "hello", 5);
	write(sv[0], " world", 6);
	char b[32] = {0};
	EXPECT("stream_peek", recv(sv[1], b, sizeof b, MSG_PEEK), 11);
	memset(b, 0, sizeof b);
	int n = read(sv[1], b, sizeof b);
	CHECK("stream_bytes_merge", n == 11 && strcmp(b, "hello world") == 0, "n %d %s", n, b);
	EXPECT("dontwait_eagain", neg(recv(sv[1], b, 1, MSG_DONTWAIT)), -EAGAIN);
	struct ucred cr;
	socklen_t l = sizeof cr;
	getsockopt(sv[0], SOL_SOCKET, SO_PEERCRED, &cr, &l);
	CHECK("pair_peercred", l == sizeof cr && cr.pid == getpid() && cr.uid == geteuid() && cr.gid == getegid(), "pid %d",
	      cr.pid);
	/* Half close: the peer reads end-of-file, its poll shows RDHUP. */
	shutdown(sv[0], SHUT_WR);
	EXPECT("shut_wr_peer_eof", read(sv[1], b, sizeof b), 0);
	struct pollfd pf = {.fd = sv[1], .events = POLLIN | POLLOUT | POLLRDHUP};
	poll(&pf, 1, 0);
	EXPECT("shut_wr_peer_poll", pf.revents, POLLIN | POLLOUT | POLLRDHUP);
	EXPECT("shut_wr_write_epipe", neg(send(sv[0], "x", 1, MSG_NOSIGNAL)), -EPIPE);
	EXPECT("shut_bad_how", neg(shutdown(sv[0], 7)), -EINVAL);
	write(sv[1], "back", 4);
	EXPECT("other_direction_works", read(sv[0], b, sizeof b), 4);
	close(sv[0]);
	pf.revents = 0;
	poll(&pf, 1, 0);
	EXPECT("peer_closed_poll", pf.revents, POLLIN | POLLOUT | POLLHUP | POLLRDHUP);
	EXPECT("peer_closed_epipe", neg(send(sv[1], "x", 1, MSG_NOSIGNAL)), -EPIPE);
	signal(SIGPIPE, SIG_IGN);
	EXPECT("peer_closed_write_epipe", neg(write(sv[1], "x", 1)), -EPIPE);
	signal(SIGPIPE, SIG_DFL);
	close(sv[1]);

	/* Unread data at close: the peer sees ECONNRESET. */
	socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
	write(sv[1], "zz", 2);
	close(sv[0]);
	EXPECT("close_with_unread_econnreset", neg(read(sv[1], b, sizeof b)), -ECONNRESET);
	EXPECT("then_eof", read(sv[1], b, sizeof b), 0);
	close(sv[1]);

	/* Datagrams keep their boundaries; truncation. */
	socketpair(AF_UNIX, SOCK_DGRAM, 0, sv);
	send(sv[0], "0123456789", 10, 0);
	send(sv[0], "ab", 2, 0);
	send(sv[0], "", 0, 0);
	EXPECT("dgram_truncated", recv(sv[1], b, 3, 0), 3);
	EXPECT("dgram_next_message", recv(sv[1], b, sizeof b, 0), 2);
	EXPECT("dgram_empty_message", recv(sv[1], b, sizeof b, 0), 0);
	send(sv[0], "0123456789", 10, 0);
	EXPECT("dgram_msg_trunc_flag_full_length", recv(sv[1], b, 3, MSG_TRUNC), 10);
	struct iovec iov = {b, 4};
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
	send(sv[0], "0123456789", 10, 0);
	n = recvmsg(sv[1], &m, 0);
	CHECK("recvmsg_flags_trunc", n == 4 && (m.msg_flags & MSG_TRUNC), "n %d flags %#x", n, m.msg_flags);
	close(sv[0]), close(sv[1]);

	/* A receiver not connected back holds max_dgram_qlen + 1 messages;
	 * a sender connected to it is not writable meanwhile. */
	struct sockaddr_un qa;
	socklen_t ql = abstract(&qa, "queue");
	int qr = socket(AF_UNIX, SOCK_DGRAM, 0), qs = socket(AF_UNIX, SOCK_DGRAM, 0);
	bind(qr, (struct sockaddr *)&qa, ql);
	connect(qs, (struct sockaddr *)&qa, ql);
	int sent = 0;
	while (send(qs, "q", 1, MSG_DONTWAIT) == 1 && sent < 100)
		sent++;
	CHECK("dgram_queue_limit", sent == 11 && errno == EAGAIN, "sent %d errno %d", sent, errno);
	struct pollfd wp = {.fd = qs, .events = POLLOUT};
	EXPECT("dgram_full_not_writable", poll(&wp, 1, 0), 0);
	recv(qr, b, 1, 0);
	EXPECT("dgram_room_writable", poll(&wp, 1, 0), 1);
	close(qs), close(qr);

	/* Seqpacket: records, and end-of-file after the peer closes. */
	socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv);
	send(sv[0], "one", 3, 0);
	send(sv[0], "two!", 4, 0);
	EXPECT("seqpacket_record", recv(sv[1], b, sizeof b, 0), 3);
	n = recv(sv[1], b, 2, 0);
	EXPECT("seqpacket_truncates", n, 2);
	close(sv[0]);
	EXPECT("seqpacket_eof", recv(sv[1], b, sizeof b, 0), 0);
	close(sv[1]);

	/* mmsg. */
	socketpair(AF_UNIX, SOCK_DGRAM, 0, sv);
	struct mmsghdr mm[3];
	struct iovec io[3];
	char bufs[3][8];
	const char *words[] = {"a", "bb", "ccc"};
	for (int i = 0; i < 3; i++) {
		io[i] = (struct iovec){(void *)words[i], strlen(words[i])};
		mm[i] = (struct mmsghdr){.msg_hdr = {.msg_iov = &io[i], .msg_iovlen = 1}};
	}
	EXPECT("sendmmsg", sendmmsg(sv[0], mm, 3, 0), 3);
	for (int i = 0; i < 3; i++) {
		io[i] = (struct iovec){bufs[i], sizeof bufs[i]};
		mm[i] = (struct mmsghdr){.msg_hdr = {.msg_iov = &io[i], .msg_iovlen = 1}};
	}
	n = recvmmsg(sv[1], mm, 3, MSG_DONTWAIT, NULL);
	CHECK("recvmmsg", n == 3 && mm[0].msg_len == 1 && mm[1].msg_len == 2 && mm[2].msg_len == 3, "n %d", n);
	EXPECT("recvmmsg_empty_eagain", neg(recvmmsg(sv[1], mm, 3, MSG_DONTWAIT, NULL)), -EAGAIN);
	close(sv[0]), close(sv[1]);
}

static void listeners(void) {
	struct sockaddr_un a, b;
	socklen_t al = abstract(&a, "srv");
	int srv = socket(AF_UNIX, SOCK_STREAM, 0);
	EXPECT("bind_abstract", bind(srv, (struct sockaddr *)&a, al), 0);
	EXPECT("bind_twice_einval", neg(bind(srv, (struct sockaddr *)&a, al)), -EINVAL);
	int other = socket(AF_UNIX, SOCK_STREAM, 0);
	EXPECT("name_in_use", neg(bind(other, (struct sockaddr *)&a, al)), -EADDRINUSE);
	socklen_t l = sizeof b;
	getsockname(srv, (struct sockaddr *)&b, &l);
	CHECK("getsockname_abstract", l == al && memcmp(&a, &b, al) == 0, "len %u vs %u", l, al);
	socklen_t cl = abstract(&b, "nobody-here");
	EXPECT("connect_refused", neg(connect(other, (struct sockaddr *)&b, cl)), -ECONNREFUSED);
	EXPECT("connect_before_listen_refused", neg(connect(other, (struct sockaddr *)&a, al)), -ECONNREFUSED);
	EXPECT("connect_short_name", neg(connect(other, (struct sockaddr *)&a, 1)), -EINVAL);
	EXPECT("listen", listen(srv, 1), 0);
	int v;
	l = sizeof v;
	getsockopt(srv, SOL_SOCKET, SO_ACCEPTCONN, &v, &l);
	EXPECT("so_acceptconn", v, 1);
	struct pollfd pf = {.fd = srv, .events = POLLIN | POLLOUT};
	EXPECT("listener_idle_poll", poll(&pf, 1, 0), 0);
	fcntl(srv, F_SETFL, O_NONBLOCK);
	EXPECT("accept_nonblock_eagain", neg(accept(srv, NULL, NULL)), -EAGAIN);
	EXPECT("connect", connect(other, (struct sockaddr *)&a, al), 0);
	EXPECT("connect_again_eisconn", neg(connect(other, (struct sockaddr *)&a, al)), -EISCONN);
	poll(&pf, 1, 0);
	EXPECT("listener_pending_poll", pf.revents, POLLIN);
	/* Writes before the accept are kept. */
	write(other, "early", 5);
	l = sizeof b;
	memset(&b, 0xff, sizeof b);
	int c = accept4(srv, (struct sockaddr *)&b, &l, SOCK_CLOEXEC);
	CHECK("accept_peer_unnamed", c >= 0 && l == 2 && b.sun_family == AF_UNIX && (fcntl(c, F_GETFD) & FD_CLOEXEC),
	      "c %d len %u", c, l);
	char buf[16] = {0};
	EXPECT("data_sent_before_accept", read(c, buf, sizeof buf), 5);
	l = sizeof b;
	getsockname(c, (struct sockaddr *)&b, &l);
	CHECK("accepted_has_listener_name", l == al && memcmp(&a, &b, al) == 0, "len %u", l);
	l = sizeof b;
	getpeername(other, (struct sockaddr *)&b, &l);
	CHECK("client_peer_is_listener", l == al && memcmp(&a, &b, al) == 0, "len %u", l);
	struct ucred cr;
	l = sizeof cr;
	getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cr, &l);
	CHECK("accepted_peercred", cr.pid == getpid() && cr.uid == geteuid(), "pid %d", cr.pid);
	l = sizeof cr;
	getsockopt(other, SOL_SOCKET, SO_PEERCRED, &cr, &l);
	CHECK("client_peercred", cr.pid == getpid() && cr.uid == geteuid(), "pid %d", cr.pid);
	/* The backlog: backlog + 1 connections wait; more get EAGAIN. */
	int q[4], made = 0;
	for (int i = 0; i < 4; i++) {
		q[i] = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
		if (connect(q[i], (struct sockaddr *)&a, al) == 0)
			made++;
		else if (errno != EAGAIN)
			made = -100;
	}
	EXPECT("backlog_plus_one", made, 2);
	for (int i = 0; i < 4; i++)
		close(q[i]);
	/* A client going away before its accept still yields a socket. */
	int gone = accept(srv, NULL, NULL);
	CHECK("accept_after_client_closed", gone >= 0 && read(gone, buf, 1) == 0, "fd %d", gone);
	close(gone);
	close(c), close(other), close(srv);
	EXPECT("name_free_after_close", bind(socket(AF_UNIX, SOCK_STREAM, 0), (struct sockaddr *)&a, al), 0);

	/* Automatic names. */
	int au = socket(AF_UNIX, SOCK_DGRAM, 0);
	struct sockaddr_un fam = {.sun_family = AF_UNIX};
	EXPECT("autobind", bind(au, (struct sockaddr *)&fam, sizeof(sa_family_t)), 0);
	l = sizeof b;
	getsockname(au, (struct sockaddr *)&b, &l);
	CHECK("autobind_name", l == 8 && b.sun_path[0] == 0, "len %u", l);
	close(au);

	/* Paths: a socket node in the file system. */
	struct sockaddr_un p = {.sun_family = AF_UNIX};
	snprintf(p.sun_path, sizeof p.sun_path, "%s/rw/sock", dir);
	int ps = socket(AF_UNIX, SOCK_STREAM, 0);
	EXPECT("bind_path", bind(ps, (struct sockaddr *)&p, sizeof p), 0);
	struct stat st;
	CHECK("path_node_is_socket", stat(p.sun_path, &st) == 0 && S_ISSOCK(st.st_mode), "mode %o", st.st_mode);
	l = sizeof b;
	getsockname(ps, (struct sockaddr *)&b, &l);
	CHECK("path_name_length", l == offsetof(struct sockaddr_un, sun_path) + strlen(p.sun_path) + 1, "len %u", l);
	int ps2 = socket(AF_UNIX, SOCK_STREAM, 0);
	EXPECT("path_in_use", neg(bind(ps2, (struct sockaddr *)&p, sizeof p)), -EADDRINUSE);
	listen(ps, 5);
	EXPECT("connect_path", connect(ps2, (struct sockaddr *)&p, sizeof p), 0);
	int pc = accept(ps, NULL, NULL);
	write(ps2, "via path", 8);
	EXPECT("path_connection_works", read(pc, buf, sizeof buf), 8);
	close(pc), close(ps2), close(ps);
	int ps3 = socket(AF_UNIX, SOCK_STREAM, 0);
	EXPECT("stale_path_refused", neg(connect(ps3, (struct sockaddr *)&p, sizeof p)), -ECONNREFUSED);
	unlink(p.sun_path);
	EXPECT("missing_path_enoent", neg(connect(ps3, (struct sockaddr *)&p, sizeof p)), -ENOENT);
	snprintf(p.sun_path, sizeof p.sun_path, "%s/rw", dir);
	EXPECT("not_a_socket_refused", neg(connect(ps3, (struct sockaddr *)&p, sizeof p)), -ECONNREFUSED);
	close(ps3);
}

static void datagrams(void) {
	struct sockaddr_un ra, sa, got;
	socklen_t rl = abstract(&ra, "dgram-r"), sl = abstract(&sa, "dgram-s");
	int r = socket(AF_UNIX, SOCK_DGRAM, 0), s = socket(AF_UNIX, SOCK_DGRAM, 0);
	bind(r, (struct sockaddr *)&ra, rl);
	EXPECT("send_unconnected_enotconn", neg(send(s, "x", 1, 0)), -ENOTCONN);
	EXPECT("sendto_unnamed_sender", sendto(s, "hi", 2, 0, (struct sockaddr *)&ra, rl), 2);
	socklen_t gl = sizeof got;
	char b[8];
	EXPECT("recvfrom", recvfrom(r, b, sizeof b, 0, (struct sockaddr *)&got, &gl), 2);
	EXPECT("recvfrom_unnamed_len", gl, 0);
	bind(s, (struct sockaddr *)&sa, sl);
	sendto(s, "hi", 2, 0, (struct sockaddr *)&ra, rl);
	gl = sizeof got;
	recvfrom(r, b, sizeof b, 0, (struct sockaddr *)&got, &gl);
	CHECK("recvfrom_sender_name", gl == sl && memcmp(&got, &sa, sl) == 0, "len %u", gl);
	EXPECT("connect_dgram", connect(s, (struct sockaddr *)&ra, rl), 0);
	EXPECT("send_connected", send(s, "yo", 2, 0), 2);
	EXPECT("recv_connected", recv(r, b, sizeof b, 0), 2);
	/* A receiver connected elsewhere refuses others. */
	int x = socket(AF_UNIX, SOCK_DGRAM, 0);
	connect(r, (struct sockaddr *)&sa, sl);
	EXPECT("receiver_connected_elsewhere_eperm", neg(sendto(x, "z", 1, 0, (struct sockaddr *)&ra, rl)), -EPERM);
	close(r);
	EXPECT("peer_gone_econnrefused", neg(send(s, "x", 1, 0)), -ECONNREFUSED);
	close(s), close(x);
}

static int send_fds(int s, const int *fds, int n) {
	char cbuf[CMSG_SPACE(sizeof(int) * 4)];
	memset(cbuf, 0, sizeof cbuf);
	struct iovec iov = {"F", 1};
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			   .msg_controllen = CMSG_SPACE(sizeof(int) * n)};
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int) * n);
	memcpy(CMSG_DATA(c), fds, sizeof(int) * n);
	return sendmsg(s, &m, 0) < 0 ? -errno : 0;
}

/* Receives up to 4 descriptors with `room` bytes of control buffer;
 * returns how many, and the msg_flags. */
static int recv_fds(int s, int *fds, size_t room, int flags, int *mflags) {
	char cbuf[CMSG_SPACE(sizeof(int) * 4)];
	char d;
	struct iovec iov = {&d, 1};
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = room};
	if (recvmsg(s, &m, flags) < 0)
		return -errno;
	*mflags = m.msg_flags;
	int n = 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
			for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++)
				memcpy(&fds[n++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
	return n;
}

static void rights(void) {
	int sv[2], p[2], fds[4], fl = 0;
	socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
	pipe(p);
	EXPECT("send_rights", send_fds(sv[0], &p[0], 1), 0);
	close(p[0]); /* in flight: the sender's copy goes */
	write(p[1], "through", 7);
	int n = recv_fds(sv[1], fds, CMSG_SPACE(sizeof(int) * 4), MSG_CMSG_CLOEXEC, &fl);
	char b[16] = {0};
	CHECK("received_fd_works", n == 1 && read(fds[0], b, sizeof b) == 7 && strcmp(b, "through") == 0, "n %d", n);
	CHECK("cmsg_cloexec", n == 1 && (fcntl(fds[0], F_GETFD) & FD_CLOEXEC), "not set");
	if (n == 1)
		close(fds[0]);
	int two[2] = {p[1], sv[0]};
	send_fds(sv[0], two, 2);
	n = recv_fds(sv[1], fds, CMSG_LEN(sizeof(int)), 0, &fl);
	CHECK("ctrunc_one_of_two", n == 1 && (fl & MSG_CTRUNC), "n %d flags %#x", n, fl);
	if (n == 1)
		close(fds[0]);
	int bad = 999;
	EXPECT("bad_fd_ebadf", send_fds(sv[0], &bad, 1), -EBADF);
	/* Data read with read(2) drops the descriptors. */
	send_fds(sv[0], &p[1], 1);
	EXPECT("read_drops_rights", read(sv[1], b, 1), 1);
	/* Between processes: a child passes a pipe it made. */
	pid_t c = fork();
	if (c == 0) {
		int cp[2];
		pipe(cp);
		write(cp[1], "from child", 10);
		close(cp[1]);
		_exit(send_fds(sv[0], &cp[0], 1) == 0 ? 0 : 1);
	}
	int st;
	waitpid(c, &st, 0);
	n = recv_fds(sv[1], fds, CMSG_SPACE(sizeof(int) * 4), 0, &fl);
	memset(b, 0, sizeof b);
	CHECK("rights_between_processes", n == 1 && read(fds[0], b, sizeof b) == 10 && strcmp(b, "from child") == 0,
	      "n %d", n);
	if (n == 1)
		close(fds[0]);
	/* Rights still in flight when the receiver closes: nothing leaks. */
	send_fds(sv[0], &p[1], 1);
	close(sv[1]);
	close(sv[0]), close(p[1]);
	OK("in_flight_at_close");
}

static void credentials(void) {
	int sv[2], on = 1;
	socketpair(AF_UNIX, SOCK_DGRAM, 0, sv);
	setsockopt(sv[1], SOL_SOCKET, SO_PASSCRED, &on, sizeof on);
	int v = 0;
	socklen_t l = sizeof v;
	getsockopt(sv[1], SOL_SOCKET, SO_PASSCRED, &v, &l);
	EXPECT("passcred_set", v, 1);
	send(sv[0], "c", 1, 0);
	char cbuf[CMSG_SPACE(sizeof(struct ucred))], d;
	struct iovec iov = {&d, 1};
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
	recvmsg(sv[1], &m, 0);
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);
	struct ucred u = {0};
	if (c && c->cmsg_type == SCM_CREDENTIALS)
		memcpy(&u, CMSG_DATA(c), sizeof u);
	CHECK("passcred_receives_sender", c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS &&
					       u.pid == getpid() && u.uid == getuid() && u.gid == getgid(),
	      "pid %d uid %u", u.pid, u.uid);
	/* Explicit credentials: one's own are accepted. */
	struct ucred mine = {getpid(), getuid(), getgid()};
	char sbuf[CMSG_SPACE(sizeof mine)];
	memset(sbuf, 0, sizeof sbuf);
	struct iovec siov = {"e", 1};
	struct msghdr sm = {.msg_iov = &siov, .msg_iovlen = 1, .msg_control = sbuf, .msg_controllen = sizeof sbuf};
	struct cmsghdr *sc = CMSG_FIRSTHDR(&sm);
	sc->cmsg_level = SOL_SOCKET;
	sc->cmsg_type = SCM_CREDENTIALS;
	sc->cmsg_len = CMSG_LEN(sizeof mine);
	memcpy(CMSG_DATA(sc), &mine, sizeof mine);
	EXPECT("explicit_own_credentials", sendmsg(sv[0], &sm, 0), 1);
	close(sv[0]), close(sv[1]);
}

static void epoll_hangup(void) {
	int sv[2];
	socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
	int ep = epoll_create1(0);
	struct epoll_event e = {.events = EPOLLIN | EPOLLRDHUP, .data.fd = sv[1]};
	epoll_ctl(ep, EPOLL_CTL_ADD, sv[1], &e);
	struct epoll_event out;
	EXPECT("epoll_idle", epoll_wait(ep, &out, 1, 0), 0);
	pid_t c = fork();
	if (c == 0) {
		write(sv[0], "x", 1);
		_exit(0);
	}
	int n = epoll_wait(ep, &out, 1, 2000);
	CHECK("epoll_data_from_child", n == 1 && out.events == EPOLLIN, "n %d ev %#x", n, n ? out.events : 0);
	waitpid(c, NULL, 0);
	char b;
	read(sv[1], &b, 1);
	close(sv[0]);
	n = epoll_wait(ep, &out, 1, 2000);
	CHECK("epoll_hangup_on_peer_close", n == 1 && out.events == (EPOLLIN | EPOLLRDHUP | EPOLLHUP), "n %d ev %#x", n,
	      n ? out.events : 0);
	close(sv[1]), close(ep);
}

int main(int argc, char **argv) {
	dir = argc > 1 ? argv[1] : "/tmp";
	snprintf(abs_base, sizeof abs_base, "rvisor-compat-%d", getpid());
	creation();
	pairs();
	listeners();
	datagrams();
	rights();
	credentials();
	epoll_hangup();
	return 0;
}
