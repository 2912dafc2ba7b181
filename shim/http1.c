/* http1.c - HTTP/1.x message framing, followed byte by byte (http1.h).
 *
 * Only as much of HTTP as says where a message ends: the start lines
 * (a request's method, a response's status), the Content-Length and
 * Transfer-Encoding headers, chunked bodies with their extensions and
 * trailers.  Bodies are skipped by count, never scanned.  Whatever is
 * not understood turns the connection's following off for good: the
 * cost of a wrong "the exchange is over" (a stalled response left
 * without its request deadline) is worse than the cost of none (the
 * deadline keeps its plain definition).
 */
#include "http1.h"

enum h1_state {
	S_START = 0, /* at a message boundary */
	S_METHOD,    /* request: the method token */
	S_TARGET,    /* request: the request target */
	S_RVER,      /* request: " HTTP/1." */
	S_VDIGIT,    /* either: the minor version digit */
	S_EOL,       /* request: CR LF ending the request line */
	S_SVER,      /* response: "HTTP/1." */
	S_SP,        /* response: the space after the version */
	S_CODE,      /* response: three digits */
	S_REASON,    /* response: the reason phrase, up to LF */
	S_HLINE,     /* the start of a header (or trailer) line */
	S_HLF,       /* CR at the start of a line: LF ends the section */
	S_HNAME,     /* a field name */
	S_HVAL,      /* a field value, up to LF */
	S_BODY,      /* n body bytes to come */
	S_CSIZE,     /* a chunk's size, hex */
	S_CEXT,      /* the rest of a chunk-size line, up to LF */
	S_CDATA,     /* n chunk bytes to come */
	S_CCR,       /* the CR after chunk data */
	S_CLF,       /* the LF after chunk data */
};

/* h1_dir.fl */
enum {
	F_CL = 1,      /* Content-Length seen (value in n) */
	F_TE = 2,      /* Transfer-Encoding seen */
	F_CHUNKED = 4, /* ... and its last coding is chunked */
	F_TRAILER = 8, /* the header lines being read are a trailer */
	F_CR = 16,     /* a CR was just seen where CR LF may end a line */
};

/* The fields and methods that matter, matched as they stream by. */
enum { HDR_OTHER = 0, HDR_CL, HDR_TE };
static const char cl_name[] = "content-length";
static const char te_name[] = "transfer-encoding";
static const char chunked[] = "chunked";
static const char http1[] = "HTTP/1.";
#define METHOD_MAX 32

static int give_up(struct h1_ex *x)
{
	x->mode = H1_OFF;
	return -1;
}

static int lower(int ch)
{
	return ch >= 'A' && ch <= 'Z' ? ch | 0x20 : ch;
}

/* The headers (or trailers) of the message in d ended. */
static int headers_done(struct h1_ex *x, struct h1_dir *d, int wrote);

/* A whole message went by in direction d. */
static int message_done(struct h1_ex *x, struct h1_dir *d, int wrote)
{
	d->st = S_START;
	d->fl = 0;
	d->n = 0;
	if (wrote)
		return 0;
	if (!x->pending) /* an answer to nothing: not ours to follow */
		return give_up(x);
	x->pending--;
	x->headq >>= 1;
	x->answered = 1;
	return 0;
}

static int headers_done(struct h1_ex *x, struct h1_dir *d, int wrote)
{
	if (d->fl & F_TRAILER)
		return message_done(x, d, wrote);
	if (!wrote) {
		if (d->code == 101) /* the connection changes protocol */
			return give_up(x);
		if (d->code < 100)
			return give_up(x);
		if (d->code < 200) { /* interim (100 Continue): more follows */
			d->st = S_START;
			d->fl = 0;
			return 0;
		}
		if ((x->headq & 1) || d->code == 204 || d->code == 304)
			return message_done(x, d, wrote);
	}
	if (d->fl & F_TE) {
		/* A body not ending in chunked runs until the close (a
		 * response), or is invalid (a request): not followed. */
		if (!(d->fl & F_CHUNKED))
			return give_up(x);
		d->st = S_CSIZE;
		d->n = 0;
		d->pos = 0;
		return 0;
	}
	if (d->fl & F_CL) {
		if (!d->n)
			return message_done(x, d, wrote);
		d->st = S_BODY;
		return 0;
	}
	/* No framing: a request has no body; a response runs until the
	 * peer closes, which ends the connection anyway. */
	return wrote ? message_done(x, d, wrote) : give_up(x);
}

/* One character of the value of the field d->hdr. */
static int value_char(struct h1_ex *x, struct h1_dir *d, int ch)
{
	if (d->hdr == HDR_CL) {
		if (ch == ' ' || ch == '\t') {
			if (d->pos == 1) /* digits then space: the value ended */
				d->pos = 2;
			return 0;
		}
		if (ch < '0' || ch > '9' || d->pos == 2 ||
		    d->n > (UINT64_MAX - 9) / 10)
			return give_up(x);
		d->n = d->n * 10 + (uint64_t)(ch - '0');
		d->pos = 1;
		return 0;
	}
	if (d->hdr == HDR_TE) {
		/* pos: characters of "chunked" matched in this coding;
		 * 0xff: this coding is something else. */
		if (ch == ',') {
			d->pos = 0;
		} else if (ch != ' ' && ch != '\t' && d->pos != 0xff) {
			d->pos = d->pos < sizeof(chunked) - 1 &&
					 lower(ch) == chunked[d->pos]
				 ? (uint8_t)(d->pos + 1) : 0xff;
		}
	}
	return 0;
}

/* The value of field d->hdr ended (LF). */
static int value_end(struct h1_ex *x, struct h1_dir *d)
{
	if (d->hdr == HDR_CL) {
		if (d->pos == 0) /* empty */
			return give_up(x);
	} else if (d->hdr == HDR_TE) {
		d->fl |= F_TE;
		if (d->pos == sizeof(chunked) - 1)
			d->fl |= F_CHUNKED;
		else
			d->fl &= (uint8_t)~F_CHUNKED;
	}
	d->st = S_HLINE;
	d->fl &= (uint8_t)~F_CR;
	return 0;
}

static int start_line_done(struct h1_dir *d)
{
	d->st = S_HLINE;
	d->fl = 0;
	d->n = 0;
	return 0;
}

/* One character outside a body.  Returns -1 when following stops. */
static int step(struct h1_ex *x, struct h1_dir *d, int wrote, int ch)
{
	switch ((enum h1_state)d->st) {
	case S_START:
		if (ch == '\r' || ch == '\n')
			return 0; /* empty lines between messages */
		if (wrote) {
			if (ch < 'A' || ch > 'Z')
				return give_up(x);
			if (x->pending >= 8) /* deeper pipelines: not followed */
				return give_up(x);
			d->st = S_METHOD;
			d->pos = 0;
			d->cand = 3; /* HEAD, CONNECT */
		} else {
			if (!x->pending)
				return give_up(x);
			d->st = S_SVER;
			d->pos = 0;
			d->code = 0;
		}
		return step(x, d, wrote, ch);
	case S_METHOD:
		if (ch == ' ') {
			int head = (d->cand & 1) && d->pos == 4;

			if ((d->cand & 2) && d->pos == 7)
				return give_up(x); /* CONNECT: a tunnel */
			if (!d->pos)
				return give_up(x);
			x->headq |= (uint8_t)(head << x->pending);
			x->pending++;
			d->st = S_TARGET;
			d->pos = 0;
			return 0;
		}
		if (ch < 'A' || ch > 'Z' || d->pos >= METHOD_MAX)
			return give_up(x);
		if (d->pos >= 4 || ch != "HEAD"[d->pos])
			d->cand &= (uint8_t)~1;
		if (d->pos >= 7 || ch != "CONNECT"[d->pos])
			d->cand &= (uint8_t)~2;
		d->pos++;
		return 0;
	case S_TARGET:
		if (ch == ' ') {
			if (!d->pos)
				return give_up(x);
			d->st = S_RVER;
			d->pos = 0;
			return 0;
		}
		if (ch <= ' ' || ch == 0x7f)
			return give_up(x);
		d->pos = 1;
		return 0;
	case S_RVER:
	case S_SVER:
		if (ch != http1[d->pos])
			return give_up(x);
		if (++d->pos == sizeof(http1) - 1)
			d->st = S_VDIGIT;
		return 0;
	case S_VDIGIT:
		if (ch < '0' || ch > '9')
			return give_up(x);
		d->st = wrote ? S_EOL : S_SP;
		return 0;
	case S_EOL:
		if (ch == '\r' && !(d->fl & F_CR)) {
			d->fl |= F_CR;
			return 0;
		}
		return ch == '\n' ? start_line_done(d) : give_up(x);
	case S_SP:
		if (ch != ' ')
			return give_up(x);
		d->st = S_CODE;
		d->pos = 0;
		return 0;
	case S_CODE:
		if (d->pos == 3) {
			d->st = S_REASON;
			return step(x, d, wrote, ch);
		}
		if (ch < '0' || ch > '9')
			return give_up(x);
		d->code = (uint16_t)(d->code * 10 + (ch - '0'));
		d->pos++;
		return 0;
	case S_REASON:
		if (ch == '\n')
			return start_line_done(d);
		return 0;
	case S_HLINE:
		if (ch == '\r') {
			d->st = S_HLF;
			return 0;
		}
		if (ch == '\n')
			return headers_done(x, d, wrote);
		if (ch == ' ' || ch == '\t' || ch == ':')
			return give_up(x); /* obsolete line folding, or junk */
		d->st = S_HNAME;
		d->pos = 0;
		d->cand = (d->fl & F_TRAILER) ? 0 : 3; /* CL, TE */
		return step(x, d, wrote, ch);
	case S_HLF:
		return ch == '\n' ? headers_done(x, d, wrote) : give_up(x);
	case S_HNAME:
		if (ch == ':') {
			d->hdr = (d->cand & 1) && d->pos == sizeof(cl_name) - 1
					 ? HDR_CL
				 : (d->cand & 2) && d->pos == sizeof(te_name) - 1
					 ? HDR_TE : HDR_OTHER;
			if (d->hdr == HDR_CL && (d->fl & F_CL))
				return give_up(x); /* a second length */
			if (d->hdr == HDR_CL)
				d->fl |= F_CL;
			d->st = S_HVAL;
			d->pos = 0;
			return 0;
		}
		if (ch == '\n' || ch == '\r')
			return give_up(x);
		ch = lower(ch);
		if (d->pos >= sizeof(cl_name) - 1 || ch != cl_name[d->pos])
			d->cand &= (uint8_t)~1;
		if (d->pos >= sizeof(te_name) - 1 || ch != te_name[d->pos])
			d->cand &= (uint8_t)~2;
		if (d->pos < 0xff)
			d->pos++;
		return 0;
	case S_HVAL:
		if (ch == '\n')
			return value_end(x, d);
		if (ch == '\r')
			return 0;
		return value_char(x, d, ch);
	case S_CSIZE:
		if ((ch >= '0' && ch <= '9') || (lower(ch) >= 'a' &&
						 lower(ch) <= 'f')) {
			int v = ch <= '9' ? ch - '0' : lower(ch) - 'a' + 10;

			if (d->n >> 59)
				return give_up(x);
			d->n = d->n << 4 | (uint64_t)v;
			d->pos = 1;
			return 0;
		}
		if (!d->pos)
			return give_up(x);
		d->st = S_CEXT;
		return step(x, d, wrote, ch);
	case S_CEXT:
		if (ch != '\n')
			return 0; /* extensions, white space, CR */
		if (!d->n) { /* the last chunk: trailers follow */
			d->st = S_HLINE;
			d->fl |= F_TRAILER;
			return 0;
		}
		d->st = S_CDATA;
		return 0;
	case S_CCR:
		if (ch == '\r') {
			d->st = S_CLF;
			return 0;
		}
		/* a bare LF */
		__attribute__((fallthrough));
	case S_CLF:
		if (ch != '\n')
			return give_up(x);
		d->st = S_CSIZE;
		d->n = 0;
		d->pos = 0;
		return 0;
	case S_BODY:
	case S_CDATA:
		break; /* counted in h1_feed */
	}
	return give_up(x);
}

static int exchange_over(const struct h1_ex *x)
{
	return x->mode == H1_ON && !x->pending && x->answered &&
	       x->req.st == S_START;
}

int h1_feed(struct h1_ex *x, int wrote, const void *p, size_t n)
{
	struct h1_dir *d = wrote ? &x->req : &x->resp;
	const unsigned char *b = p, *end;

	if (x->mode == H1_OFF || !n)
		return x->mode == H1_OFF ? 0 : exchange_over(x);
	if (!b) {
		x->mode = H1_OFF;
		return 0;
	}
	if (x->mode == H1_SNIFF) {
		/* The client speaks first, with a method: A-Z. */
		if (!wrote || b[0] < 'A' || b[0] > 'Z') {
			x->mode = H1_OFF;
			return 0;
		}
		x->mode = H1_ON;
	}
	for (end = b + n; b < end;) {
		if (d->st == S_BODY || d->st == S_CDATA) {
			size_t k = (size_t)(end - b);

			if ((uint64_t)k > d->n)
				k = (size_t)d->n;
			d->n -= k;
			b += k;
			if (d->n)
				break;
			if (d->st == S_CDATA) {
				d->st = S_CCR;
			} else if (message_done(x, d, wrote) < 0) {
				return 0;
			}
			continue;
		}
		if (step(x, d, wrote, *b++) < 0)
			return 0;
	}
	return exchange_over(x);
}
