// DeadlineClient - one or more GETs with Java 17's two HTTP clients, for
// the deadline checks of test_java.c and test_pools.c.
//
//   java -cp DIR DeadlineClient urlconn|httpclient URL [COUNT [GAP_MS [WARM]]]
//
// urlconn:    java.net.HttpURLConnection (blocking sockets; its
//             keep-alive cache keeps an idle connection for the next GET
//             to the same host).
// httpclient: java.net.http.HttpClient (NIO: a selector thread waits in
//             epoll_wait; one client for all COUNT requests, so its pool
//             keeps the connection between them).
//
// Both are used without any timeout of their own: only the shim's
// deadlines can end a wait.  COUNT GETs (default 1) with GAP_MS (default
// 0) between the end of one and the start of the next.  One line per GET:
//
//   STATUS <code> bytes=<body length> ms=<elapsed>
//   ERROR <class>: <message> [cause=<class>: <message>]... ms=<elapsed>
//
// and "DONE" at the end; exit 0 either way.  With WARM (a URL), one GET to
// it first, with the same client, printed with a "WARM " prefix: the JVM
// loads and compiles the client's code there, so that the timed GETs do
// not include seconds of class loading on a loaded machine.
import java.io.ByteArrayOutputStream;
import java.io.InputStream;
import java.net.HttpURLConnection;
import java.net.URI;
import java.net.URL;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;

public class DeadlineClient {
    static HttpClient client;

    static int urlconn(String url) throws Exception {
        HttpURLConnection c = (HttpURLConnection) new URL(url).openConnection();
        int code = c.getResponseCode();
        ByteArrayOutputStream body = new ByteArrayOutputStream();
        try (InputStream in = c.getInputStream()) {
            in.transferTo(body);
        }
        System.out.print("STATUS " + code + " bytes=" + body.size());
        return code;
    }

    static int httpclient(String url) throws Exception {
        if (client == null)
            client = HttpClient.newBuilder()
                .version(HttpClient.Version.HTTP_1_1).build();
        HttpResponse<byte[]> r = client.send(
            HttpRequest.newBuilder(URI.create(url)).build(),
            HttpResponse.BodyHandlers.ofByteArray());
        System.out.print("STATUS " + r.statusCode() + " bytes=" +
                         r.body().length);
        return r.statusCode();
    }

    // The exception and every cause under it, on one line.
    static String describe(Throwable e) {
        StringBuilder s = new StringBuilder();
        for (int depth = 0; e != null && depth < 8; depth++) {
            if (depth > 0)
                s.append(" cause=");
            s.append(e.getClass().getName()).append(": ")
             .append(e.getMessage());
            e = e.getCause() == e ? null : e.getCause();
        }
        return s.toString().replace('\n', ' ');
    }

    static void get(String api, String url, String prefix) {
        long t0 = System.nanoTime();
        System.out.print(prefix);
        try {
            if (api.equals("urlconn"))
                urlconn(url);
            else
                httpclient(url);
            System.out.println(" ms=" + (System.nanoTime() - t0) / 1000000);
        } catch (Exception e) {
            System.out.println("ERROR " + describe(e) + " ms=" +
                               (System.nanoTime() - t0) / 1000000);
        }
        System.out.flush();
    }

    public static void main(String[] args) throws Exception {
        String api = args[0], url = args[1];
        int count = args.length > 2 ? Integer.parseInt(args[2]) : 1;
        long gap = args.length > 3 ? Long.parseLong(args[3]) : 0;

        if (args.length > 4)
            get(api, args[4], "WARM ");
        for (int i = 0; i < count; i++) {
            if (i > 0)
                Thread.sleep(gap);
            get(api, url, "");
        }
        System.out.println("DONE");
        System.out.flush();
        // HttpClient's selector thread is not a daemon in every release.
        System.exit(0);
    }
}
