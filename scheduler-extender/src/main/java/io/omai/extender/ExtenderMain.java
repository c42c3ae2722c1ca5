package io.omai.extender;

import io.fabric8.kubernetes.client.KubernetesClient;
import io.fabric8.kubernetes.client.KubernetesClientBuilder;
import java.nio.file.Path;
import java.util.concurrent.CountDownLatch;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * {@code java -jar omai-scheduler-extender.jar [--config FILE] [--port N]}: starts the extender with the
 * in-cluster (or kubeconfig) API client and serves until SIGTERM.
 */
public final class ExtenderMain {
    private static final Logger log = LoggerFactory.getLogger(ExtenderMain.class);
    static final String USAGE = "usage: omai-scheduler-extender [--config FILE] [--port N]";

    private ExtenderMain() {}

    public static void main(String[] args) throws InterruptedException {
        Path config = null;
        Integer port = null;
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--config" -> config = Path.of(value(args, ++i, "--config"));
                case "--port" -> port = parsePort(value(args, ++i, "--port"));
                case "--help", "-h" -> {
                    System.out.println(USAGE);
                    return;
                }
                default -> fail("unknown argument '" + args[i] + "'; " + USAGE);
            }
        }
        KubernetesClient client = new KubernetesClientBuilder().build();
        ExtenderSettings settings;
        try {
            settings = config == null
                    ? ExtenderConfigFile.parse(
                            new com.fasterxml.jackson.databind.ObjectMapper().createObjectNode(), client)
                    : ExtenderConfigFile.load(config, client);
        } catch (ExtenderConfigFile.ConfigException e) {
            client.close();
            fail("configuration " + (config == null ? "(defaults)" : config) + ": " + e.getMessage());
            return;
        }
        if (port != null) {
            settings = new ExtenderSettings(
                    port,
                    settings.client(),
                    settings.agents(),
                    settings.scoring(),
                    settings.tenantLabel(),
                    settings.parallelism());
        }
        var stopped = new CountDownLatch(1);
        var extender = SchedulerExtender.start(settings);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            log.info("event=extender_stopping");
            extender.close();
            client.close();
            stopped.countDown();
        }));
        log.info(
                "event=extender_started port={} agents={}/{}:{} scoring={}",
                extender.port(),
                settings.agents().namespace(),
                settings.agents().service(),
                settings.agents().port(),
                settings.scoring());
        stopped.await();
    }

    private static String value(String[] args, int i, String flag) {
        if (i >= args.length) {
            fail(flag + " needs a value; " + USAGE);
        }
        return args[i];
    }

    private static int parsePort(String text) {
        try {
            int port = Integer.parseInt(text);
            if (port >= 0 && port <= 65535) {
                return port;
            }
        } catch (NumberFormatException e) {
            // reported below
        }
        fail("--port '" + text + "' is not a port (0..65535)");
        return -1;
    }

    private static void fail(String message) {
        System.err.println("omai-scheduler-extender: " + message);
        System.exit(2);
    }
}
