// HttpClientStall - java.net.http.HttpClient (NIO: a selector thread waits
// in epoll_wait while the calling thread's request is written by the
// client's executor) against a server that accepts and never answers.
//
//   java HttpClientStall.java URL
//
// Prints "STATUS <code>" or "ERROR <exception> ms=<elapsed>"; exit 0.
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;

public class HttpClientStall {
    public static void main(String[] args) throws Exception {
        HttpClient client = HttpClient.newHttpClient();
        long t0 = System.nanoTime();
        try {
            HttpResponse<String> r = client.send(
                HttpRequest.newBuilder(URI.create(args[0])).build(),
                HttpResponse.BodyHandlers.ofString());
            System.out.println("STATUS " + r.statusCode());
        } catch (Exception e) {
            System.out.println("ERROR " + e + " ms=" +
                               (System.nanoTime() - t0) / 1000000);
        }
    }
}
