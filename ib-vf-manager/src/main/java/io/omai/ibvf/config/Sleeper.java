package io.omai.ibvf.config;

import java.time.Duration;

/** Pauses between readiness checks; a seam so tests never depend on wall-clock time. */
@FunctionalInterface
public interface Sleeper {

    Sleeper REAL = duration -> Thread.sleep(duration);

    void sleep(Duration duration) throws InterruptedException;
}
