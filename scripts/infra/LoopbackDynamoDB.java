import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import software.amazon.dynamodb.services.local.monitoring.Telemetry;
import software.amazon.dynamodb.services.local.server.DynamoDBProxyServer;
import software.amazon.dynamodb.services.local.server.LocalDynamoDBRequestHandler;
import software.amazon.dynamodb.services.local.server.LocalDynamoDBServerHandler;

/**
 * Starts DynamoDB Local (shared database, telemetry off) on 127.0.0.1 only: in memory, or with a
 * second argument, in files in that folder (tables then survive a restart, even after SIGKILL).
 * DynamoDB Local's own ServerRunner has no bind-address option and listens on every interface,
 * so this mounts its request handler on a Jetty connector bound to loopback.
 *
 * Usage: java -Djava.library.path=<jars> -cp <jars>/*:<this> LoopbackDynamoDB <port> [<dbPath>]
 */
public final class LoopbackDynamoDB {
  public static void main(String[] args) throws Exception {
    int port = Integer.parseInt(args.length > 0 ? args[0] : "8000");
    String dbPath = args.length > 1 ? args[1] : null;
    Telemetry.configureTelemetry("JAR", "IN_MEMORY", false);
    LocalDynamoDBRequestHandler requests = new LocalDynamoDBRequestHandler(0, dbPath == null, dbPath, true, false);
    LocalDynamoDBServerHandler handler = new LocalDynamoDBServerHandler(requests, null);
    DynamoDBProxyServer proxy = new DynamoDBProxyServer(port, handler);
    Server server = new Server();
    ServerConnector connector = new ServerConnector(server);
    connector.setHost("127.0.0.1");
    connector.setPort(port);
    server.addConnector(connector);
    server.setHandler(proxy.setUpHandler(handler));
    server.start();
    System.out.println("DynamoDB Local listening on 127.0.0.1:" + port);
    server.join();
  }
}
