package io.omai.agent.deviceplugin;

import com.google.errorprone.annotations.concurrent.GuardedBy;
import io.grpc.BindableService;
import io.grpc.Server;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.BasicFileAttributes;
import java.util.List;
import java.util.Objects;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The plugin's gRPC server on its socket in the device-plugin directory. kubelet deletes every socket there when
 * it restarts; a server whose file is gone can no longer be dialled, so {@link #ensureListening} binds a fresh
 * one whenever the file is missing or is not the one we bound.
 */
public final class PluginSocketServer implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(PluginSocketServer.class);

    private final Path socket;
    private final List<? extends BindableService> services;

    @GuardedBy("this")
    private Server server;

    @GuardedBy("this")
    private Object boundFileKey;

    @GuardedBy("this")
    private int starts;

    public PluginSocketServer(Path socket, List<? extends BindableService> services) {
        this.socket = socket;
        this.services = List.copyOf(services);
    }

    public Path socket() {
        return socket;
    }

    /**
     * Makes sure a server listens on the socket file that is there now.
     *
     * @return true when a server was (re)started
     */
    public synchronized boolean ensureListening() throws IOException {
        Object key = fileKey(socket);
        if (server != null && !server.isShutdown() && key != null && Objects.equals(key, boundFileKey)) {
            return false;
        }
        if (server != null) {
            log.info("event=plugin_socket_lost socket={} detail=\"rebinding\"", socket);
            UnixSocketGrpc.stop(server, 200);
        }
        server = UnixSocketGrpc.startServer(socket, services);
        boundFileKey = fileKey(socket);
        starts++;
        log.info("event=plugin_listening socket={} start={}", socket, starts);
        return true;
    }

    synchronized int starts() {
        return starts;
    }

    @Override
    public synchronized void close() {
        UnixSocketGrpc.stop(server, 1_000);
        server = null;
        try {
            if (Objects.equals(fileKey(socket), boundFileKey)) {
                Files.deleteIfExists(socket);
            }
        } catch (IOException e) {
            log.warn("event=plugin_socket_not_removed socket={} error=\"{}\"", socket, e.toString());
        }
    }

    /**
     * Which incarnation of a socket file this is: device and inode plus the inode's change time. The inode alone
     * is not enough: a socket file deleted and bound again gets the same inode number back (ext4 and tmpfs reuse
     * it at once), and a kubelet restart would go unnoticed.
     *
     * @return null when the file does not exist
     */
    static Object fileKey(Path path) {
        try {
            Object inode = Files.readAttributes(path, BasicFileAttributes.class, LinkOption.NOFOLLOW_LINKS)
                    .fileKey();
            Object changed = Files.getAttribute(path, "unix:ctime", LinkOption.NOFOLLOW_LINKS);
            return java.util.List.of(inode, changed);
        } catch (IOException | UnsupportedOperationException | IllegalArgumentException e) {
            return null;
        }
    }
}
