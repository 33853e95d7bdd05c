<?php

declare(strict_types=1);

namespace Cometbox\Webhook;

/**
 * One event of a webhook request, as Webhook::verify() returns it. Events
 * come in the order they happened for each client; a request that the
 * node sent again carries the same ids: drop the ones you have seen.
 */
abstract class Event
{
    private string $id;

    private string $name;

    private int $timeMs;

    public function __construct(string $id, string $name, int $timeMs)
    {
        $this->id = $id;
        $this->name = $name;
        $this->timeMs = $timeMs;
    }

    /** Unique, and the same when the event is sent again: deduplicate by it. */
    public function id(): string
    {
        return $this->id;
    }

    /** The event's name, e.g. "client_online". */
    public function name(): string
    {
        return $this->name;
    }

    /** When it happened, Unix milliseconds. */
    public function timeMs(): int
    {
        return $this->timeMs;
    }
}
