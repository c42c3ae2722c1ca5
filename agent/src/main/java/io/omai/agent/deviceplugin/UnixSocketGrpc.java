package io.omai.agent.deviceplugin;

import io.grpc.BindableService;
import io.grpc.ManagedChannel;
import io.grpc.Server;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import io.grpc.netty.shaded.io.netty.channel.EventLoopGroup;
import io.grpc.netty.shaded.io.netty.channel.MultiThreadIoEventLoopGroup;
import io.grpc.netty.shaded.io.netty.channel.epoll.EpollDomainSocketChannel;
import io.grpc.netty.shaded.io.netty.channel.epoll.EpollIoHandler;
import io.grpc.netty.shaded.io.netty.channel.epoll.EpollServerDomainSocketChannel;
import io.grpc.netty.shaded.io.netty.channel.unix.DomainSocketAddress;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;

/**
 * gRPC over unix-domain sockets, the way kubelet talks to device plugins: servers bound to a socket file
 * (a stale file is removed first) and plaintext channels to one. One small epoll event-loop group serves every
 * server and channel of the process; calls run on virtual threads.
 */
public final class UnixSocketGrpc {
    private static final EventLoopGroup EVENT_LOOPS = new MultiThreadIoEventLoopGroup(
            2, Thread.ofPlatform().daemon().name("grpc-uds-", 0).factory(), EpollIoHandler.newFactory());
    private static final ExecutorService CALLS = Executors.newThreadPerTaskExecutor(
            Thread.ofVirtual().name("grpc-call-", 0).factory());

    private UnixSocketGrpc() {}

    /** Binds a server to {@code socket} (replacing a stale file) and starts it. */
    public static Server startServer(Path socket, List<? extends BindableService> services) throws IOException {
        Files.createDirectories(socket.getParent());
        Files.deleteIfExists(socket);
        NettyServerBuilder builder = NettyServerBuilder.forAddress(new DomainSocketAddress(socket.toString()))
                .channelType(EpollServerDomainSocketChannel.class)
                .bossEventLoopGroup(EVENT_LOOPS)
                .workerEventLoopGroup(EVENT_LOOPS)
                .executor(CALLS); // handlers touch files: never on the event loop
        services.forEach(builder::addService);
        return builder.build().start();
    }

    /** A plaintext channel to the server on {@code socket}; it connects lazily. */
    public static ManagedChannel channel(Path socket) {
        return NettyChannelBuilder.forAddress(new DomainSocketAddress(socket.toString()))
                .channelType(EpollDomainSocketChannel.class)
                .eventLoopGroup(EVENT_LOOPS)
                .executor(CALLS)
                .overrideAuthority("localhost")
                .usePlaintext()
                .build();
    }

    /** Shuts a server down: graceful for up to {@code graceMillis}, then forced. */
    public static void stop(Server server, long graceMillis) {
        if (server == null) {
            return;
        }
        server.shutdown();
        try {
            if (!server.awaitTermination(graceMillis, TimeUnit.MILLISECONDS)) {
                server.shutdownNow();
                server.awaitTermination(graceMillis, TimeUnit.MILLISECONDS);
            }
        } catch (InterruptedException e) {
            server.shutdownNow();
            Thread.currentThread().interrupt();
        }
    }

    /** Closes a channel, forcibly after a short grace. */
    public static void close(ManagedChannel channel) {
        if (channel == null) {
            return;
        }
        channel.shutdown();
        try {
            if (!channel.awaitTermination(1, TimeUnit.SECONDS)) {
                channel.shutdownNow();
            }
        } catch (InterruptedException e) {
            channel.shutdownNow();
            Thread.currentThread().interrupt();
        }
    }
}
