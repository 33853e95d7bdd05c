<?php

declare(strict_types=1);

namespace Cometbox\Format;

use Cometbox\Exception\InvalidArgumentException;
use Cometbox\Message;

/**
 * A publish body format of docs/protocol.md: how a batch is written, and
 * how the node's receipts are read back.
 *
 * @internal the Client picks XmlFormat or JsonFormat by name
 */
interface Format
{
    /** The Content-Type of the body, also sent as Accept. */
    public function contentType(): string;

    /**
     * Writes the body of a publish. Every message is checked before the
     * first byte is written, so bad input never yields half a document.
     *
     * @param array<int|string, Message> $messages keyed as the caller gave them, for errors
     *
     * @throws InvalidArgumentException naming the first message this format cannot carry
     */
    public function encode(array $messages): string;

    /**
     * Reads the ids out of a 200 answer to a publish of $messages (for a
     * group message, how many members got a copy).
     *
     * @param Message[] $messages
     *
     * @return int[]|null the ids in the order of $messages; null when the
     *                    body is not the receipt of exactly these messages
     */
    public function receipts(string $body, array $messages): ?array;
}
