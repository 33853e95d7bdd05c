<?php

declare(strict_types=1);

namespace Cometbox\Internal;

/**
 * Time as NodePool sees it, so that tests can run retries without waiting.
 *
 * @internal
 */
interface Clock
{
    /** Seconds since the epoch, with microseconds. */
    public function now(): float;

    public function sleep(float $seconds): void;
}
