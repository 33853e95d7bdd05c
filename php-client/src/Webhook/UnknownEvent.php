<?php

declare(strict_types=1);

namespace Cometbox\Webhook;

/**
 * An event this version of the client does not know (a newer node's, e.g.
 * group_occupied once groups exist): its name and fields as sent, so
 * that an application may still handle or log it.
 */
final class UnknownEvent extends Event
{
    /** @var array<string, mixed> */
    private array $data;

    /**
     * @param array<string, mixed> $data the event's fields as sent
     */
    public function __construct(string $id, string $name, int $timeMs, array $data)
    {
        parent::__construct($id, $name, $timeMs);
        $this->data = $data;
    }

    /** @return array<string, mixed> */
    public function data(): array
    {
        return $this->data;
    }
}
