<?php

declare(strict_types=1);

namespace Cometbox\Tests\Fake;

use Cometbox\Internal\Clock;

/**
 * A clock that only moves when told to, or when something sleeps on it.
 */
final class FakeClock implements Clock
{
    private float $now;

    /** @var float[] every sleep, in order */
    private array $sleeps = [];

    public function __construct(float $now = 1800000000.0)
    {
        $this->now = $now;
    }

    public function now(): float
    {
        return $this->now;
    }

    public function sleep(float $seconds): void
    {
        if ($seconds > 0) {
            $this->sleeps[] = $seconds;
            $this->now += $seconds;
        }
    }

    public function advance(float $seconds): void
    {
        $this->now += $seconds;
    }

    /** @return float[] */
    public function sleeps(): array
    {
        return $this->sleeps;
    }
}
