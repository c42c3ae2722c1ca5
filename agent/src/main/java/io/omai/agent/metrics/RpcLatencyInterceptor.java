package io.omai.agent.metrics;

import io.grpc.ForwardingServerCall.SimpleForwardingServerCall;
import io.grpc.Metadata;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import io.grpc.Status;
import io.micrometer.core.instrument.Timer;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.function.LongSupplier;

/**
 * Times the gRPC methods that have a latency histogram (kubelet's Allocate and GetPreferredAllocation, the
 * scheduler API's Fit), from the call's start to its close, whatever the outcome; other methods pass through
 * untouched. Installed on a server, so the services themselves carry no metrics code.
 */
final class RpcLatencyInterceptor implements ServerInterceptor {
    private final Map<String, Timer> timersByFullMethodName;
    private final LongSupplier nanoClock;

    RpcLatencyInterceptor(Map<String, Timer> timersByFullMethodName, LongSupplier nanoClock) {
        this.timersByFullMethodName = Map.copyOf(timersByFullMethodName);
        this.nanoClock = nanoClock;
    }

    @Override
    public <Q, R> ServerCall.Listener<Q> interceptCall(
            ServerCall<Q, R> call, Metadata headers, ServerCallHandler<Q, R> next) {
        Timer timer = timersByFullMethodName.get(call.getMethodDescriptor().getFullMethodName());
        if (timer == null) {
            return next.startCall(call, headers);
        }
        long started = nanoClock.getAsLong();
        return next.startCall(
                new SimpleForwardingServerCall<>(call) {
                    @Override
                    public void close(Status status, Metadata trailers) {
                        timer.record(nanoClock.getAsLong() - started, TimeUnit.NANOSECONDS);
                        super.close(status, trailers);
                    }
                },
                headers);
    }
}
